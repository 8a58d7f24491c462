//! On-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes tens of milliseconds to seconds; loading its
//! precompiled form takes well under one. Entries are keyed by the SHA-256 of the component
//! and by the engine's `precompile_compatibility_hash`, so a new wasmtime or engine setting
//! never loads a stale entry. Entries are written to a temporary file and renamed into
//! place, so a crash never leaves half an entry under a valid name; an entry that fails to
//! load anyway (corrupt, truncated) is recompiled and replaced.
//!
//! An entry is native code the host runs, so it is loaded only from a folder that no one
//! else could have written to: a folder not owned by the host's user, or writable by its
//! group or others (a predictable path such as `/tmp/...` created by someone else first),
//! is not used at all, and an entry not owned by the host's user, writable by others or not
//! a plain file is recompiled and replaced. Each refusal is logged with its reason.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    pub fn new(engine: &Engine, dir: &Path) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    fn entry_path(&self, bytes: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(bytes));
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    pub fn load_or_compile(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
        let path = self.entry_path(bytes);
        let usable = match distrust_of_dir(&self.dir) {
            Some(why) => {
                tracing::warn!(dir = %self.dir.display(), why, "compile cache folder refused, compiling without it; remove it or make it the host user's, mode 0700");
                false
            }
            None => true,
        };
        match std::fs::symlink_metadata(&path) {
            Ok(_) if !usable => {}
            Ok(meta) => match distrust_of_entry(&meta) {
                Some(why) => {
                    tracing::warn!(path = %path.display(), why, "compile cache entry refused, recompiling");
                }
                // SAFETY: the folder and the entry are this user's and writable by no one
                // else (checked just above), so the entry is a file this host wrote from
                // `Engine::precompile_component`; a damaged one is rejected by wasmtime's
                // header and checksum checks and recompiled below.
                None => match unsafe { Component::deserialize_file(engine, &path) } {
                    Ok(component) => return Ok(component),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "corrupt compile cache entry, recompiling");
                    }
                },
            },
            Err(_) => {}
        }
        let compiled = engine.precompile_component(bytes)?;
        if usable && let Err(e) = self.store(&path, &compiled) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the compile cache");
        }
        // SAFETY: `compiled` was produced just now by this engine.
        unsafe { Component::deserialize(engine, &compiled) }
    }

    fn store(&self, path: &Path, compiled: &[u8]) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let tmp = crate::private_file::write_beside(path, compiled)?;
        std::fs::rename(&tmp, path)
    }
}

/// Why the cache folder must not be used, if it exists and could hold another user's files.
fn distrust_of_dir(dir: &Path) -> Option<String> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Some("it is not a folder".into()),
        Ok(meta) => distrust_of_owner_and_mode(&meta),
        // Missing: created private (0700) by the first store.
        Err(_) => None,
    }
}

/// Why an entry must not be loaded: not a plain file (a link is never written here), or
/// another user's, or writable by others.
fn distrust_of_entry(meta: &std::fs::Metadata) -> Option<String> {
    if !meta.file_type().is_file() {
        return Some("it is not a plain file".into());
    }
    distrust_of_owner_and_mode(meta)
}

fn distrust_of_owner_and_mode(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let ours = unsafe { libc::geteuid() };
    if meta.uid() != ours {
        return Some(format!(
            "owned by uid {}, not the host's uid {ours}",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    None
}

/// Creates `dir` (and parents) readable by this user only.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}
