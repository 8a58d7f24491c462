//! One loaded, validated, pre-instantiated component: what an invocation needs of it. Its
//! grants are configured once per version and swapped whole when the config changes, so a
//! request reads them without a lock and keeps the ones it started with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use super::capabilities::Grants;
use super::limits::LimitsConfig;
use super::load::{HttpExport, Shape};
use super::metrics::PluginCounters;
use super::reuse::{ReusePolicy, Reused};
use super::state::PluginState;
use crate::bindings::{ServicePre, SubscriberPre};
use crate::breaker::Probation;
use crate::capability::{Imports, World};

/// What an invocation instantiates.
pub enum Entry {
    Service(ServicePre<PluginState>),
    /// A `wasi:http` handler of WASI 0.2 or 0.3.
    Http(wasmtime_wasi_http::handler::ProxyPre<PluginState>),
    Subscriber(SubscriberPre<PluginState>),
}

/// A plugin's grants and limits as configured now.
pub struct Configured {
    pub limits: LimitsConfig,
    /// The environment variables its WASI base hands it (none unless granted).
    pub env: Vec<(String, String)>,
    /// How an HTTP plugin's instances are reused (`None`: a fresh one per request).
    pub reuse: Option<ReusePolicy>,
    pub grants: Grants,
}

pub struct Plugin {
    pub name: Arc<str>,
    /// The first 16 hex digits of the SHA-256 of the component.
    pub version: Arc<str>,
    pub world: World,
    /// The `wasi:http` handler it exports, for the http world.
    pub http_export: Option<HttpExport>,
    pub imports: Imports,
    /// It runs on the concurrent engine (WASI 0.3).
    pub(super) concurrent: bool,
    pub source: PathBuf,
    pub loaded_at: SystemTime,
    pub counters: PluginCounters,
    /// Set when this version replaced another: its first requests are judged.
    pub probation: Probation,
    pub entry: Entry,
    /// Its reused instances (HTTP plugins).
    pub(super) reused: Option<Reused>,
    configured: ArcSwap<Configured>,
}

impl Plugin {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        name: &str,
        version: String,
        world: World,
        shape: Shape,
        source: &Path,
        entry: Entry,
        reused: Option<Reused>,
        configured: Configured,
        counters: PluginCounters,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            world,
            http_export: shape.http,
            imports: shape.imports,
            concurrent: shape.concurrent,
            source: source.to_path_buf(),
            loaded_at: SystemTime::now(),
            counters,
            probation: Probation::default(),
            entry,
            reused,
            configured: ArcSwap::from_pointee(configured),
        }
    }

    /// Its grants and limits in force now.
    pub fn configured(&self) -> Arc<Configured> {
        self.configured.load_full()
    }

    /// Puts new grants and limits in force for the next invocations.
    pub fn reconfigure(&self, configured: Configured) {
        self.configured.store(Arc::new(configured));
    }

    /// The interface of its `wasi:http` handler, for the admin API and `micro-api check`.
    pub fn http_export(&self) -> Option<&'static str> {
        self.http_export.map(HttpExport::interface)
    }

    /// This version stops serving (replaced or removed): its idle reused instances end now,
    /// its busy ones after their requests.
    pub fn retire(&self) {
        if let Some(reused) = &self.reused {
            reused.retire();
        }
    }

    /// This version serves again (a rollback brought it back).
    pub fn reinstate(&self) {
        if let Some(reused) = &self.reused {
            reused.reinstate();
        }
    }

    /// The wall-clock budget of one invocation of this plugin.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.configured.load().limits.deadline_ms)
    }
}

/// The plugin name for a deployed file: stem, `_` read as `-`.
pub fn plugin_name(path: &Path) -> Option<String> {
    if path.extension()? != "wasm" {
        return None;
    }
    Some(path.file_stem()?.to_str()?.replace('_', "-"))
}

/// A component's version: the first 16 hex digits of its SHA-256.
pub fn version_of(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}
