//! The plugin lifecycle: read `.wasm` files from the plugins folder, compile (through the
//! cache), validate, pre-instantiate, and publish them in the [`PluginTable`].
//!
//! A plugin's name is its file stem with `_` read as `-` (`user_api.wasm` is `user-api`),
//! so the files cargo produces deploy as they are. Its world is read from its exports:
//! `micro-api:host/handler` makes a service, `wasi:http/incoming-handler` an HTTP handler.
//! Validation is deny-by-default: a component that imports a capability its
//! `[plugin.<name>]` section does not grant is refused, with the reason, and never served.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;

use crate::bindings::ServicePre;
use crate::config::{Config, LimitsConfig, PluginConfig};
use crate::runtime::{PluginState, Runtime};

/// The two worlds of `wit/host.wit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    Service,
    Http,
}

/// What a request instantiates.
pub enum Entry {
    Service(ServicePre<PluginState>),
    Http(wasmtime_wasi_http::p2::bindings::ProxyPre<PluginState>),
}

/// Counters shown by the admin API.
#[derive(Debug, Default)]
pub struct PluginStats {
    pub invocations: AtomicU64,
    pub errors: AtomicU64,
    pub traps: AtomicU64,
}

impl PluginStats {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One loaded, validated, pre-instantiated component.
pub struct Plugin {
    pub name: String,
    /// The first 16 hex digits of the SHA-256 of the component.
    pub version: String,
    pub world: World,
    pub entry: Entry,
    pub grants: PluginConfig,
    pub limits: LimitsConfig,
    pub source: PathBuf,
    pub loaded_at: SystemTime,
    pub stats: PluginStats,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    #[error("not a valid component: {0}")]
    Compile(String),
    #[error(
        "exports neither micro-api:host/handler (service world) nor wasi:http/incoming-handler (http world)"
    )]
    UnknownWorld,
    #[error("imports {import}, which [plugin.{plugin}] does not grant: {fix}")]
    NotGranted {
        plugin: String,
        import: String,
        fix: String,
    },
    #[error("cannot be instantiated here: {0}")]
    Instantiate(String),
}

/// The plugin name for a deployed file: stem, `_` read as `-`.
pub fn plugin_name(path: &Path) -> Option<String> {
    if path.extension()? != "wasm" {
        return None;
    }
    Some(path.file_stem()?.to_str()?.replace('_', "-"))
}

impl Plugin {
    /// The wall-clock budget of one invocation of this plugin.
    pub fn deadline(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.limits.deadline_ms)
    }

    /// Compiles and validates the component at `path` for the plugin called `name`.
    pub fn load(
        runtime: &Runtime,
        config: &Config,
        name: &str,
        path: &Path,
    ) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path)?;
        let version = hex::encode(&Sha256::digest(&bytes)[..8]);
        let component = runtime
            .compile(&bytes)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let grants = config.plugin_config(name);
        let engine = runtime.engine();
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        let world = if exports
            .iter()
            .any(|e| e.starts_with("micro-api:host/handler@"))
        {
            World::Service
        } else if exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2"))
        {
            World::Http
        } else {
            return Err(LoadError::UnknownWorld);
        };
        let imports: BTreeSet<String> = ty
            .imports(engine)
            .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
            .map(|(n, _)| n.to_string())
            .collect();
        check_grants(name, &imports, &grants)?;
        let pre = runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        let entry = match world {
            World::Service => Entry::Service(
                ServicePre::new(pre).map_err(|e| LoadError::Instantiate(format!("{e:#}")))?,
            ),
            World::Http => Entry::Http(
                wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre)
                    .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?,
            ),
        };
        Ok(Self {
            name: name.to_string(),
            version,
            world,
            entry,
            limits: config.limits_for(name),
            grants,
            source: path.to_path_buf(),
            loaded_at: SystemTime::now(),
            stats: PluginStats::default(),
        })
    }
}

/// Refuses a component that imports a capability its config does not grant.
fn check_grants(
    name: &str,
    imports: &BTreeSet<String>,
    grants: &PluginConfig,
) -> Result<(), LoadError> {
    let imported = |interface: &str| {
        imports
            .iter()
            .find(|i| i.starts_with(&format!("micro-api:host/{interface}@")))
    };
    let refuse = |import: &String, fix: &str| LoadError::NotGranted {
        plugin: name.to_string(),
        import: import.clone(),
        fix: fix.to_string(),
    };
    if let Some(i) = imported("sql").filter(|_| !grants.sql) {
        return Err(refuse(i, "add `sql = true` to grant the database"));
    }
    if let Some(i) = imported("crypto").filter(|_| !grants.crypto) {
        return Err(refuse(
            i,
            "add `crypto = true` to grant password hashing and tokens",
        ));
    }
    if let Some(i) = imported("rpc").filter(|_| grants.rpc.is_empty()) {
        return Err(refuse(
            i,
            "list the services it may call: `rpc = [\"user\"]`",
        ));
    }
    Ok(())
}

/// The plugins currently served, swapped as a whole so a request sees one consistent set;
/// a request keeps the `Arc<Plugin>` it started with until it ends.
#[derive(Default)]
pub struct PluginTable {
    current: ArcSwap<HashMap<String, Arc<Plugin>>>,
    refused: std::sync::Mutex<HashMap<String, String>>,
}

impl PluginTable {
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.current.load().get(name).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Plugin>> {
        let mut all: Vec<_> = self.current.load().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Plugins refused at load, with the reason.
    pub fn refused(&self) -> HashMap<String, String> {
        self.refused.lock().expect("refused list lock").clone()
    }

    /// Loads every `.wasm` file in `dir`; a refused file is logged and listed, never fatal.
    pub fn load_dir(&self, runtime: &Runtime, config: &Config, dir: &Path) -> std::io::Result<()> {
        let mut loaded = HashMap::new();
        let mut refused = HashMap::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for path in files {
            let Some(name) = plugin_name(&path) else {
                continue;
            };
            let started = std::time::Instant::now();
            match Plugin::load(runtime, config, &name, &path) {
                Ok(plugin) => {
                    tracing::info!(
                        plugin = %name, version = %plugin.version, world = ?plugin.world,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "plugin loaded"
                    );
                    loaded.insert(name, Arc::new(plugin));
                }
                Err(e) => {
                    tracing::error!(plugin = %name, path = %path.display(), reason = %e, "plugin refused");
                    refused.insert(name, e.to_string());
                }
            }
        }
        self.current.store(Arc::new(loaded));
        *self.refused.lock().expect("refused list lock") = refused;
        Ok(())
    }
}
