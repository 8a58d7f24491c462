//! The plugin authors' commands, beside `serve`: `micro-api new` scaffolds a plugin crate
//! from the templates in `host/templates/`, `micro-api build` turns plugin crates into
//! components in the plugins folder, and `micro-api check` tells what a component is and
//! whether this config lets it load, with the host's own validation.

pub mod build;
pub mod check;
pub mod new;

use std::path::Path;

/// Copies `from` to `dir/file` by write-then-rename, so a host watching `dir` never reads
/// half a file.
pub fn deploy(from: &Path, dir: &Path, file: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::copy(from, &tmp)?;
    std::fs::rename(&tmp, dir.join(file))
}
