//! `cargo xtask <task>`: the project's build tasks, in Rust so they need nothing installed
//! beyond rustup's toolchain (no `just`, no `cargo-component`).
//!
//! - `plugins`: build the plugins in `plugins/` for wasm32-wasip2 and deploy them to
//!   `plugins/dist/` (the host picks them up from there);
//! - `run [ARGS]`: `plugins`, then `micro-api serve ARGS` with the repo's `config.toml`;
//! - `test [ARGS]`: build the plugins, the test plugins, the examples and the foreign
//!   components (`foreign.rs`), then run every test (the host's, xtask's, and the SDK's natively, its doc examples included);
//! - `modules [--verbose]`: the import graph of host/src's top-level modules; fails on a
//!   loop between two of them (see `modules/`);
//! - `lint`: `modules`, rustfmt, and clippy `-D warnings` for the host and for the plugins;
//! - `bench [--short] [...]`: micro-api under `wrk` beside its baselines, then the
//!   criterion micro-benchmarks (see `bench/` here and the repo's `bench/RESULTS.md`).

mod bench;
mod foreign;
mod modules;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Plugin crates deployed by `plugins` (the SDK is a library, not a plugin).
const PLUGINS: &[&str] = &["auth", "user", "user-api", "audit"];
/// Components only the tests load (`hello`: built from the standard wasi:http bindings only).
const TEST_PLUGINS: &[&str] = &[
    "probe",
    "probe-http",
    "greeter",
    "command",
    "hello",
    "config-reader",
    "signer",
    "no-answer",
    "stream-echo",
];
/// The examples of `plugins/examples/`, built and exercised by the tests so none rots.
const EXAMPLES: &[&str] = &["example-hello", "example-greeting", "example-subscriber"];
/// The builds of `greeter` the hot-reload tests swap between: (features, file name).
const GREETER_BUILDS: &[(&str, &str)] = &[
    ("", "greeter_v1.wasm"),
    ("v2", "greeter_v2.wasm"),
    ("broken", "greeter_broken.wasm"),
];
const WASM_TARGET: &str = "wasm32-wasip2";
const PLUGIN_PROFILE: &str = "plugin";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match task.as_str() {
        "plugins" => deploy_plugins(&root).map(drop),
        "run" => {
            deploy_plugins(&root)?;
            cargo(
                &["run", "--package", "micro-api", "--", "serve"],
                &rest,
                &[],
            )
        }
        "test" => {
            build_wasm(PLUGINS.iter().chain(TEST_PLUGINS).chain(EXAMPLES))?;
            build_greeters(&root)?;
            foreign::build(&root)?;
            let components = wasm_dir(&root);
            cargo(
                // The SDK and the contracts natively: their unit tests, and their doc
                // examples compiled.
                &[
                    "test",
                    "--package",
                    "micro-api",
                    "--package",
                    "xtask",
                    "--package",
                    "micro-api-sdk",
                    "--package",
                    "micro-api-contracts",
                ],
                &rest,
                &[("MICRO_API_TEST_COMPONENTS", components.as_os_str())],
            )
        }
        "modules" => modules::run(&root, &rest),
        "lint" => lint(&root),
        "bench" => bench::run(&root, &rest),
        _ => {
            bail!(
                "usage: cargo xtask <plugins | run [serve args] | test [cargo test args] | modules [--verbose] | lint | bench [--short]>"
            )
        }
    }
}

/// The workspace this run of `cargo xtask` was started in. `cargo run` sets
/// `CARGO_MANIFEST_DIR` at run time too; the compile-time value is only the fallback, because
/// two clones sharing one `CARGO_TARGET_DIR` (as CI's does) share one xtask binary that cargo
/// considers fresh for both.
fn workspace_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Cargo's target dir: `CARGO_TARGET_DIR`, else the workspace's `target/`.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Where cargo puts the plugin components.
fn wasm_dir(root: &Path) -> PathBuf {
    target_dir(root).join(WASM_TARGET).join(PLUGIN_PROFILE)
}

/// The file cargo writes for crate `name`, and the name it is deployed under.
fn component_file(name: &str) -> String {
    format!("{}.wasm", name.replace('-', "_"))
}

/// `cargo build` arguments for components.
fn wasm_build_args() -> Vec<&'static str> {
    vec![
        "build",
        "--target",
        WASM_TARGET,
        "--profile",
        PLUGIN_PROFILE,
    ]
}

fn build_wasm<'a>(crates: impl IntoIterator<Item = &'a &'a str>) -> Result<()> {
    ensure_wasm_target()?;
    let mut args = wasm_build_args();
    for name in crates {
        args.extend(["--package", name]);
    }
    cargo(&args, &[], &[])
}

/// Builds each flavour of `greeter` and keeps it under its own name (each feature set is
/// cached by cargo, so only the first run compiles them).
fn build_greeters(root: &Path) -> Result<()> {
    for (features, file) in GREETER_BUILDS {
        let mut args = wasm_build_args();
        args.extend(["--package", "greeter", "--quiet"]);
        if !features.is_empty() {
            args.extend(["--features", features]);
        }
        cargo(&args, &[], &[])?;
        let dir = wasm_dir(root);
        std::fs::copy(dir.join("greeter.wasm"), dir.join(file))?;
    }
    Ok(())
}

/// Builds the plugins and copies each into `plugins/dist/` by write-then-rename, so a
/// running host never sees half a file.
fn deploy_plugins(root: &Path) -> Result<PathBuf> {
    build_wasm(PLUGINS)?;
    let dist = root.join("plugins").join("dist");
    std::fs::create_dir_all(&dist)?;
    for name in PLUGINS {
        let file = component_file(name);
        let from = wasm_dir(root).join(&file);
        let tmp = dist.join(format!(".{file}.tmp"));
        std::fs::copy(&from, &tmp).with_context(|| format!("copy {}", from.display()))?;
        std::fs::rename(&tmp, dist.join(&file))?;
    }
    println!("deployed {} plugins to {}", PLUGINS.len(), dist.display());
    Ok(dist)
}

/// Installs the wasm target through rustup when the toolchain lacks it (rustup usually
/// does this itself from `rust-toolchain.toml`; older rustups do not).
fn ensure_wasm_target() -> Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .context("cannot run rustc")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(WASM_TARGET).exists() {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status()
        .context("the wasm32-wasip2 target is missing and rustup cannot be run")?;
    if !status.success() {
        bail!("rustup target add {WASM_TARGET} failed ({status})");
    }
    Ok(())
}

fn lint(root: &Path) -> Result<()> {
    modules::lint(root)?;
    cargo(&["fmt", "--all", "--check"], &[], &[])?;
    cargo(
        &[
            "clippy",
            "--package",
            "micro-api",
            "--package",
            "xtask",
            "--package",
            "micro-api-contracts",
            "--all-targets",
        ],
        &["--", "-D", "warnings"].map(String::from),
        &[],
    )?;
    let mut args = vec![
        "clippy",
        "--target",
        WASM_TARGET,
        "--package",
        "micro-api-sdk",
    ];
    for name in PLUGINS.iter().chain(TEST_PLUGINS).chain(EXAMPLES) {
        args.extend(["--package", name]);
    }
    cargo(&args, &["--", "-D", "warnings"].map(String::from), &[])
}

/// The protoc that `etcd-client`'s build script needs, from the `protoc-bin-vendored` crate
/// (so nothing has to be installed). It is copied with its well-known `.proto` includes to
/// `target/protoc/{bin,include}`, where `.cargo/config.toml` points plain `cargo` commands
/// too, so xtask and plain cargo share one build cache.
fn protoc() -> Result<PathBuf> {
    // `.cargo/config.toml` sets PROTOC for this very process too, to the copy made below:
    // trust it (or a user's own) only once it exists.
    if let Some(path) = std::env::var_os("PROTOC").map(PathBuf::from)
        && path.exists()
    {
        return Ok(path);
    }
    let home = workspace_root().join("target").join("protoc");
    let binary = home.join("bin").join("protoc");
    if !binary.exists() {
        let vendored = protoc_bin_vendored::protoc_bin_path()
            .map_err(|e| anyhow::anyhow!("no vendored protoc for this platform: {e}"))?;
        let include = protoc_bin_vendored::include_path()
            .map_err(|e| anyhow::anyhow!("no vendored protoc includes: {e}"))?;
        copy_tree(&include, &home.join("include"))?;
        std::fs::create_dir_all(home.join("bin"))?;
        std::fs::copy(&vendored, &binary)?;
    }
    Ok(binary)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn cargo(args: &[&str], extra: &[String], env: &[(&str, &std::ffi::OsStr)]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(args).args(extra).env("PROTOC", protoc()?);
    for (key, value) in env {
        command.env(key, value);
    }
    let status = command
        .status()
        .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployed_names_read_back_as_plugin_names() {
        // The host reads `user_api.wasm` as the plugin `user-api`.
        assert_eq!(component_file("user-api"), "user_api.wasm");
        assert_eq!(component_file("auth"), "auth.wasm");
    }
}
