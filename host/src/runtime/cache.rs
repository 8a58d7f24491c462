//! On-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes tens of milliseconds to seconds; loading its
//! precompiled form takes well under one. Entries are keyed by the SHA-256 of the component
//! and by the engine's `precompile_compatibility_hash`, so a new wasmtime or engine setting
//! never loads a stale entry. Entries are written to a temporary file and renamed into
//! place, so a crash never leaves half an entry under a valid name; an entry that fails to
//! load anyway (corrupt, truncated) is recompiled and replaced.

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
        if path.exists() {
            // SAFETY: the cache folder is private to this host (0700) and only ever holds
            // files this host wrote from `Engine::precompile_component`; a damaged file is
            // rejected by wasmtime's header and checksum checks and recompiled below.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "corrupt compile cache entry, recompiling");
                }
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        if let Err(e) = self.store(&path, &compiled) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the compile cache");
        }
        // SAFETY: `compiled` was produced just now by this engine.
        unsafe { Component::deserialize(engine, &compiled) }
    }

    fn store(&self, path: &Path, compiled: &[u8]) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let tmp = path.with_extension(format!(
            "tmp{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::write(&tmp, compiled)?;
        std::fs::rename(&tmp, path)
    }
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
