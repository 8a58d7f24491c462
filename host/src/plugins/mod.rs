//! The plugin lifecycle: read `.wasm` files from the plugins folder, compile (through the
//! cache), validate, pre-instantiate, and publish them in the [`PluginTable`]; [`reload`]
//! keeps the table in step with the folder while the host runs.
//!
//! A plugin's name is its file stem with `_` read as `-` (`user_api.wasm` is `user-api`),
//! so the files cargo produces deploy as they are. Its world is read from its exports:
//! `micro-api:host/handler` makes a service, `wasi:http/incoming-handler` an HTTP handler,
//! `micro-api:host/message-handler` a subscriber.
//! Validation is deny-by-default: a component that imports a capability its
//! `[plugin.<name>]` section does not grant is refused, with the reason, and never served.

pub mod reload;
pub mod table;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::bindings::{ServicePre, SubscriberPre};
use crate::config::{Config, LimitsConfig, PluginConfig};
use crate::runtime::{PluginState, Runtime};

/// The worlds of `wit/host.wit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    Service,
    Http,
    Subscriber,
}

/// What a request instantiates.
pub enum Entry {
    Service(ServicePre<PluginState>),
    Http(wasmtime_wasi_http::p2::bindings::ProxyPre<PluginState>),
    Subscriber(SubscriberPre<PluginState>),
}

pub use table::PluginTable;

/// Counters shown by the admin API.
#[derive(Debug, Default)]
pub struct PluginStats {
    pub invocations: AtomicU64,
    pub errors: AtomicU64,
    pub traps: AtomicU64,
}

/// The first requests of a version that replaced another, judged by the breaker rules: if
/// too many fail, the host rolls back to the previous version by itself.
#[derive(Debug, Default)]
pub struct Probation {
    /// Requests still to be judged; 0 when not on probation.
    remaining: AtomicU32,
    failed: AtomicU32,
    total: AtomicU32,
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
    /// `grants.http`, parsed.
    pub http_grants: Arc<Vec<crate::outbound::Pattern>>,
    pub limits: LimitsConfig,
    pub source: PathBuf,
    pub loaded_at: SystemTime,
    pub stats: PluginStats,
    pub probation: Probation,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    #[error("not a valid component: {0}")]
    Compile(String),
    #[error(
        "exports none of micro-api:host/handler (service world), wasi:http/incoming-handler (http world), micro-api:host/message-handler (subscriber world)"
    )]
    UnknownWorld,
    #[error("imports {import}, which [plugin.{plugin}] does not grant: {fix}")]
    NotGranted {
        plugin: String,
        import: String,
        fix: String,
    },
    /// A subscriber exports rather than imports its capability, so it is refused in words
    /// of its own rather than as an ungranted import.
    #[error(
        "exports micro-api:host/message-handler (subscriber world), but [plugin.{plugin}] subscribes to no topic: list the topics it is handed: `subscribe = [\"user.login\"]`"
    )]
    NoTopics { plugin: String },
    #[error("cannot be instantiated here: {0}")]
    Instantiate(String),
    #[error(
        "limits.memory_mb = {asked} is above the pool's slot size of {slot} MiB; lower it or raise [plugins.pool] memory_mb (a restart applies pool sizes)"
    )]
    AbovePool { asked: u64, slot: u64 },
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

    /// Starts judging the next `requests` requests of this version.
    pub fn start_probation(&self, requests: u32) {
        self.probation.failed.store(0, Ordering::Relaxed);
        self.probation.total.store(requests, Ordering::Relaxed);
        self.probation.remaining.store(requests, Ordering::Relaxed);
    }

    pub fn end_probation(&self) {
        self.probation.remaining.store(0, Ordering::Relaxed);
    }

    /// Counts one request's outcome; when it was the last one on probation, returns
    /// (failed, total) for the caller to judge.
    pub fn record_outcome(&self, failed: bool) -> Option<(u32, u32)> {
        let p = &self.probation;
        let before = p
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(1)
            })
            .ok()?;
        let failures = if failed {
            p.failed.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            p.failed.load(Ordering::Acquire)
        };
        (before == 1).then(|| (failures, p.total.load(Ordering::Relaxed)))
    }

    /// Compiles and validates `bytes`, read from `path`, as the plugin called `name`.
    pub fn load(
        runtime: &Runtime,
        config: &Config,
        name: &str,
        path: &Path,
        bytes: &[u8],
    ) -> Result<Self, LoadError> {
        let version = version_of(bytes);
        let component = runtime
            .compile(bytes)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let shape = Shape::of(runtime, &component);
        let (world, entry) = validate(runtime, config, name, &component, &shape)?;
        let limits = config.limits_for(name);
        let grants = config.plugin_config(name);
        Ok(Self {
            name: name.to_string(),
            version,
            world,
            entry,
            limits,
            http_grants: Arc::new(
                grants
                    .http
                    .iter()
                    .filter_map(|p| crate::outbound::Pattern::parse(p).ok())
                    .collect(),
            ),
            grants,
            source: path.to_path_buf(),
            loaded_at: SystemTime::now(),
            stats: PluginStats::default(),
            probation: Probation::default(),
        })
    }
}

/// What a compiled component looks like from outside: the world its exports make it, and
/// the interfaces it imports. Read before any grant is looked at, so `micro-api check` can
/// show it for a component the config refuses.
#[derive(Debug, Clone)]
pub struct Shape {
    /// `None`: it exports no known world's entry point.
    pub world: Option<World>,
    /// The instances it imports (`micro-api:host/rpc@0.1.0`, `wasi:clocks/...`), sorted.
    pub imports: BTreeSet<String>,
}

impl Shape {
    pub fn of(runtime: &Runtime, component: &Component) -> Self {
        let engine = runtime.engine();
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        let world = if exports
            .iter()
            .any(|e| e.starts_with("micro-api:host/handler@"))
        {
            Some(World::Service)
        } else if exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2"))
        {
            Some(World::Http)
        } else if exports
            .iter()
            .any(|e| e.starts_with("micro-api:host/message-handler@"))
        {
            Some(World::Subscriber)
        } else {
            None
        };
        let imports = ty
            .imports(engine)
            .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
            .map(|(n, _)| n.to_string())
            .collect();
        Self { world, imports }
    }
}

/// The load-time validation of a compiled component as the plugin `name` under `config`:
/// its memory limit fits the pool, its world is known, its imports are granted, and the
/// host's linker can instantiate it. [`Plugin::load`] and `micro-api check` both run this,
/// so `check`'s verdict is the host's.
pub fn validate(
    runtime: &Runtime,
    config: &Config,
    name: &str,
    component: &Component,
    shape: &Shape,
) -> Result<(World, Entry), LoadError> {
    let limits = config.limits_for(name);
    let slot = config.plugins.pool.memory_mb;
    if limits.memory_mb > slot {
        return Err(LoadError::AbovePool {
            asked: limits.memory_mb,
            slot,
        });
    }
    let world = shape.world.ok_or(LoadError::UnknownWorld)?;
    check_grants(name, world, &shape.imports, &config.plugin_config(name))?;
    let instantiate = |e: wasmtime::Error| LoadError::Instantiate(format!("{e:#}"));
    let pre = runtime
        .linker()
        .instantiate_pre(component)
        .map_err(instantiate)?;
    let entry = match world {
        World::Service => Entry::Service(ServicePre::new(pre).map_err(instantiate)?),
        World::Http => {
            Entry::Http(wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre).map_err(instantiate)?)
        }
        World::Subscriber => Entry::Subscriber(SubscriberPre::new(pre).map_err(instantiate)?),
    };
    Ok((world, entry))
}

/// A component's version: the first 16 hex digits of its SHA-256.
pub fn version_of(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// Refuses a component that imports a capability its config does not grant.
fn check_grants(
    name: &str,
    world: World,
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
    if let Some(i) = imported("broker").filter(|_| grants.publish.is_empty()) {
        return Err(refuse(
            i,
            "list the topics it may publish on: `publish = [\"user.login\"]`",
        ));
    }
    if world == World::Subscriber && grants.subscribe.is_empty() {
        return Err(LoadError::NoTopics {
            plugin: name.to_string(),
        });
    }
    Ok(())
}
