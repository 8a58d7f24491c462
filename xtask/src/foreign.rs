//! The components of `test-plugins/foreign/`: built from pinned crates.io releases (the
//! Spin SDK's README example, the `wasip3` and `wasip2` crates' HTTP examples) and our own
//! WASI 0.3 probe, in a workspace of their own (its own `Cargo.lock`) so the root's
//! dependencies never move them. Built once into the shared target dir, then copied beside
//! the other components, where the tests and the bench look.

use std::path::Path;

use anyhow::{Context, Result};

use super::{WASM_TARGET, cargo, component_file, ensure_wasm_target, target_dir, wasm_dir};

/// The components of the foreign workspace, by crate name.
pub const FOREIGN: &[&str] = &["spin-hello", "wasip3-hello", "wasip2-proxy", "probe-p3"];

pub fn build(root: &Path) -> Result<()> {
    ensure_wasm_target()?;
    let manifest = root.join("test-plugins/foreign/Cargo.toml");
    let target = target_dir(root);
    cargo(
        &[
            "build",
            "--manifest-path",
            &manifest.to_string_lossy(),
            "--target",
            WASM_TARGET,
            "--release",
            "--locked",
            "--target-dir",
            &target.to_string_lossy(),
        ],
        &[],
        &[],
    )?;
    let built = target.join(WASM_TARGET).join("release");
    let components = wasm_dir(root);
    std::fs::create_dir_all(&components)?;
    for name in FOREIGN {
        let file = component_file(name);
        std::fs::copy(built.join(&file), components.join(&file))
            .with_context(|| format!("copy {file} from {}", built.display()))?;
    }
    Ok(())
}
