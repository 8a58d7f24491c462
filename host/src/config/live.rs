//! The config in force, and applying a new one while the host runs.
//!
//! A change (the file on disk, or the etcd layer) is read through every layer, validated as
//! a whole, then applied: breaker settings, routes, plugin grants, limits and config values
//! take effect for the next request. An invalid change is refused: the running config stays,
//! and the error is logged and shown under `GET /admin/config`. Sections that shape what was
//! built at start (listeners, database, pool, registry, cluster, keys, front door, broker,
//! the config store itself) keep their running value; a change to them is reported as
//! waiting for a restart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::Serialize;

use super::layers::{Effective, Layered, Origins};
use super::{Config, ConfigError};

/// Where the layers below etcd come from, kept to read them again.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// The config file; `None`: built-in defaults only.
    pub path: Option<PathBuf>,
    /// The process environment (and command-line flags), as read at start.
    pub env: Vec<(String, String)>,
}

impl Source {
    /// Every layer, with `store` as the etcd layer.
    pub fn load(&self, store: &BTreeMap<String, String>) -> Result<Layered, ConfigError> {
        Config::load_layered(self.path.as_deref(), &self.env, store)
    }
}

/// What `GET /admin/config` says besides the values.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyStatus {
    /// Changes applied since start.
    pub generation: u64,
    /// Unix time (ms) of the last change applied.
    pub applied_at_ms: Option<u64>,
    /// Why the last change was refused, if the last change was refused.
    pub last_error: Option<String>,
    /// Keys whose new value only a restart applies.
    pub pending_restart: Vec<String>,
}

/// The config in force: swapped whole, read lock-free by every request.
pub struct LiveConfig {
    pub source: Source,
    config: ArcSwap<Config>,
    origins: ArcSwap<Origins>,
    /// The etcd layer as last read.
    pub store: Mutex<BTreeMap<String, String>>,
    status: Mutex<ApplyStatus>,
}

/// Top-level sections applied only at start.
const RESTART_ONLY: &[&str] = &[
    "server",
    "database",
    "registry",
    "cluster",
    "auth",
    "telemetry",
    "front",
    "admin",
    "login_limit",
    "broker",
    "config_store",
    "data_dir",
];

impl LiveConfig {
    pub fn new(layered: Layered, source: Source, store: BTreeMap<String, String>) -> Self {
        Self {
            source,
            config: ArcSwap::from_pointee(layered.config),
            origins: ArcSwap::from_pointee(layered.origins),
            store: Mutex::new(store),
            status: Mutex::default(),
        }
    }

    pub fn current(&self) -> std::sync::Arc<Config> {
        self.config.load_full()
    }

    /// `new` with the running value of every section a restart applies, and the keys
    /// whose change must wait for it.
    pub fn keep_restart_only(&self, mut new: Config) -> (Config, Vec<String>) {
        let running = self.current();
        let as_json = |c: &Config| serde_json::to_value(c).unwrap_or_default();
        let (old_json, new_json) = (as_json(&running), as_json(&new));
        let mut pending: Vec<String> = RESTART_ONLY
            .iter()
            .filter(|section| old_json.get(**section) != new_json.get(**section))
            .map(|section| section.to_string())
            .collect();
        // Of `[plugins]`, the default limits and probation apply at once; the rest at start.
        let mut plugins = running.plugins.clone();
        plugins.limits = new.plugins.limits;
        plugins.probation_requests = new.plugins.probation_requests;
        if as_json_plugins(&plugins) != as_json_plugins(&new.plugins) {
            pending.push("plugins (dir, cache_dir, pool, watch, settle_ms)".into());
        }
        new.plugins = plugins;
        new.server = running.server.clone();
        new.database = running.database.clone();
        new.registry = running.registry.clone();
        new.cluster = running.cluster.clone();
        new.auth = running.auth.clone();
        new.telemetry = running.telemetry.clone();
        new.front = running.front;
        new.admin = running.admin.clone();
        new.login_limit = running.login_limit.clone();
        new.broker = running.broker.clone();
        new.config_store = running.config_store.clone();
        new.data_dir = running.data_dir.clone();
        (new, pending)
    }

    /// Puts `config` in force.
    pub fn store(&self, config: Config, origins: Origins, pending_restart: Vec<String>) {
        self.config.store(config.into());
        self.origins.store(origins.into());
        let mut status = self.status.lock().expect("status lock");
        status.generation += 1;
        status.applied_at_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as u64);
        status.last_error = None;
        status.pending_restart = pending_restart;
    }

    /// Records why the last change was refused (the running config stays), or that the
    /// layers as they are now hold no error.
    pub fn set_error(&self, error: Option<String>) {
        self.status.lock().expect("status lock").last_error = error;
    }

    pub fn status(&self) -> ApplyStatus {
        self.status.lock().expect("status lock").clone()
    }

    /// Every effective value with its layer, secrets redacted.
    pub fn effective(&self) -> Vec<Effective> {
        Layered {
            config: (*self.current()).clone(),
            origins: (*self.origins.load_full()).clone(),
        }
        .effective()
    }
}

fn as_json_plugins(p: &super::PluginsConfig) -> serde_json::Value {
    serde_json::to_value(p).unwrap_or_default()
}
