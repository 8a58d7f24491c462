//! The config in force, and applying a new one while the host runs.
//!
//! A change (the file on disk, or the etcd layer) is read through every layer, validated as
//! a whole, then applied: breaker settings, routes, plugin grants, limits and config values
//! take effect for the next request. An invalid change is refused: the running config stays,
//! and the error is logged and shown under `GET /admin/config`. Sections that shape what was
//! built at start (listeners, database, pool, registry, cluster, keys, front door, broker,
//! the config store itself) keep their running value; a change to them is reported as
//! waiting for a restart.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::PathBuf;
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

    /// A config that nothing will change: built-in and file values, no source to reread.
    pub fn of(config: Config) -> Self {
        let layered = Layered {
            config,
            origins: Origins::default(),
        };
        Self::new(layered, Source::default(), BTreeMap::new())
    }

    pub fn current(&self) -> std::sync::Arc<Config> {
        self.config.load_full()
    }

    /// `new` with the running value of every section a restart applies, and the keys
    /// whose change must wait for it. Each section says whether it is one: the root's own
    /// below, each capability's in its module.
    pub fn keep_restart_only(&self, mut new: Config) -> (Config, Vec<String>) {
        let running = self.current();
        let mut pending = Vec::new();
        macro_rules! keep {
            ($($section:ident),*) => {$(
                if json(&new.$section) != json(&running.$section) {
                    pending.push(stringify!($section).to_string());
                }
                new.$section = running.$section.clone();
            )*};
        }
        keep!(
            server,
            cluster,
            front,
            admin,
            login_limit,
            config_store,
            data_dir
        );
        pending.extend(
            new.capabilities
                .keep_restart_only(&running.capabilities)
                .into_iter()
                .map(String::from),
        );
        // Of `[plugins]`, the default limits and probation apply at once; the rest at start.
        let mut plugins = running.plugins.clone();
        plugins.limits = new.plugins.limits;
        plugins.probation_requests = new.plugins.probation_requests;
        if json(&plugins) != json(&new.plugins) {
            pending.push("plugins (dir, cache_dir, pool, watch, settle_ms)".into());
        }
        new.plugins = plugins;
        (new, pending)
    }

    /// Puts `config` in force.
    pub fn store(&self, config: Config, origins: Origins, pending_restart: Vec<String>) {
        self.config.store(config.into());
        self.origins.store(origins.into());
        let mut status = self.status.lock();
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
        self.status.lock().last_error = error;
    }

    pub fn status(&self) -> ApplyStatus {
        self.status.lock().clone()
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

/// A section's JSON form, to compare a running section with a new one.
fn json(section: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(section).unwrap_or_default()
}
