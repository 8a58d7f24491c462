//! The plugin build paths the README promises, beyond the plain cargo one the other tests
//! already use.

use std::path::Path;
use std::process::Command;

/// `cargo component build` yields a component, when cargo-component is installed.
#[test]
fn cargo_component_builds_a_plugin() {
    let installed = Command::new("cargo")
        .args(["component", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("SKIPPED: cargo-component is not on PATH (cargo install cargo-component)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = tempfile::tempdir().unwrap();
    let status = Command::new("cargo")
        .current_dir(&root)
        .args([
            "component",
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "plugin",
            "-p",
            "auth",
        ])
        .arg("--target-dir")
        .arg(target.path())
        .status()
        .unwrap();
    assert!(status.success());
    let wasm = std::fs::read(target.path().join("wasm32-wasip2/plugin/auth.wasm")).unwrap();
    assert_eq!(
        &wasm[..8],
        b"\0asm\x0d\0\x01\0",
        "a component, not a core module"
    );
}
