//! `micro-api build [<crate>...]`: builds plugin crates into components with plain cargo
//! (`--target wasm32-wasip2 --profile plugin`) and deploys each to the plugins folder by
//! write-then-rename, where a running host picks it up.
//!
//! Cargo itself says where it put the component (`cargo metadata`: the target folder and
//! the crate's library name), so a crate alone, a workspace member and a crate built with
//! `CARGO_TARGET_DIR` set are all found.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const WASM_TARGET: &str = "wasm32-wasip2";
pub const PLUGIN_PROFILE: &str = "plugin";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no plugin crate {0:?}: give a crate folder, or the name of one under plugins/")]
    NoCrate(String),
    #[error("cannot run cargo: {0}")]
    Cargo(std::io::Error),
    #[error("cargo {command} failed for {manifest}{}", if output.is_empty() { String::new() } else { format!(":\n{output}") })]
    CargoFailed {
        command: &'static str,
        manifest: PathBuf,
        output: String,
    },
    #[error(
        "{0} is not a plugin crate: it has no cdylib library ([lib] crate-type = [\"cdylib\"])"
    )]
    NotAPlugin(PathBuf),
    #[error("cannot deploy {from} to {dir}: {source}")]
    Deploy {
        from: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// The crate folder `spec` names: a folder with a `Cargo.toml`, else `plugins/<spec>`.
pub fn crate_dir(spec: &str) -> Result<PathBuf, BuildError> {
    [PathBuf::from(spec), Path::new("plugins").join(spec)]
        .into_iter()
        .find(|dir| dir.join("Cargo.toml").is_file())
        .ok_or_else(|| BuildError::NoCrate(spec.to_string()))
}

/// One deployed component.
#[derive(Debug)]
pub struct Built {
    /// The plugin name the host will give it.
    pub plugin: String,
    pub deployed: PathBuf,
    pub bytes: u64,
}

/// Builds the crate in `dir` and deploys its component to `plugins_dir`.
pub fn build(dir: &Path, plugins_dir: &Path) -> Result<Built, BuildError> {
    let dir = dir
        .canonicalize()
        .map_err(|_| BuildError::NoCrate(dir.display().to_string()))?;
    let manifest = dir.join("Cargo.toml");
    let (target_dir, lib) = locate(&manifest)?;
    let output = cargo(&dir)
        .args([
            "build",
            "--target",
            WASM_TARGET,
            "--profile",
            PLUGIN_PROFILE,
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .map_err(BuildError::Cargo)?;
    if !output.status.success() {
        return Err(BuildError::CargoFailed {
            command: "build",
            manifest,
            output: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    let file = format!("{lib}.wasm");
    let from = target_dir
        .join(WASM_TARGET)
        .join(PLUGIN_PROFILE)
        .join(&file);
    super::deploy(&from, plugins_dir, &file).map_err(|source| BuildError::Deploy {
        from: from.clone(),
        dir: plugins_dir.to_path_buf(),
        source,
    })?;
    let deployed = plugins_dir.join(&file);
    Ok(Built {
        plugin: lib.replace('_', "-"),
        bytes: std::fs::metadata(&deployed).map_or(0, |m| m.len()),
        deployed,
    })
}

/// Cargo, run in the crate's folder so rustup picks the crate's own toolchain file.
fn cargo(dir: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(dir);
    command
}

/// Where cargo puts the builds of the crate at `manifest` (an absolute path), and its
/// cdylib's name.
fn locate(manifest: &Path) -> Result<(PathBuf, String), BuildError> {
    let output = cargo(manifest.parent().unwrap_or(Path::new("/")))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .arg("--manifest-path")
        .arg(manifest)
        .output()
        .map_err(BuildError::Cargo)?;
    let failed = |output: String| BuildError::CargoFailed {
        command: "metadata",
        manifest: manifest.to_path_buf(),
        output,
    };
    if !output.status.success() {
        return Err(failed(String::from_utf8_lossy(&output.stderr).into_owned()));
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| failed(e.to_string()))?;
    let target_dir = metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| failed("no target_directory in its metadata".into()))?;
    let lib = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["manifest_path"].as_str().map(Path::new) == Some(manifest))
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .find(|t| {
            t["crate_types"]
                .as_array()
                .is_some_and(|types| types.iter().any(|k| k == "cdylib"))
        })
        .and_then(|t| t["name"].as_str())
        .map(|name| name.replace('-', "_"))
        .ok_or_else(|| BuildError::NotAPlugin(manifest.to_path_buf()))?;
    Ok((target_dir, lib))
}
