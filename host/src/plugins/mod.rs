//! The plugin lifecycle: which versions serve, how they got there and how they leave.
//!
//! [`Lifecycle`] keeps the [`PluginTable`] in step with the plugins folder ([`reload`],
//! followed by [`watch`]), judges each new version's first requests (its probation, by the
//! breaker's rule) and rolls back to the previous one when they fail, and re-checks every
//! loaded plugin's grants when the config changes. Loading itself (compile, validate,
//! pre-instantiate) is the runtime's.

mod config;
pub mod reload;
pub mod table;
mod watch;

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

pub use config::PluginsConfig;
pub use reload::ReloadReport;
pub use table::{PluginTable, Refusal, Rollback, RollbackError};
pub use watch::watch;

use crate::breaker::{BreakerSettings, Verdict};
use crate::runtime::{CapabilityConfigs, Configured, LoadError, LoadSettings, Plugin, Runtime};
use crate::settings::{PluginSection, PluginSections};

/// What plugins are loaded under: the parts of the config the lifecycle reads.
#[derive(Clone, Default)]
pub struct Settings {
    pub plugins: PluginsConfig,
    pub sections: PluginSections,
    pub capabilities: CapabilityConfigs,
    /// `[breaker.default]`: the rule probation judges by.
    pub probation_rules: BreakerSettings,
}

impl Settings {
    /// What the plugin `name` is loaded under.
    pub fn for_plugin<'a>(&'a self, name: &str, empty: &'a PluginSection) -> LoadSettings<'a> {
        LoadSettings {
            section: self.sections.get(name).unwrap_or(empty),
            defaults: self.plugins.limits,
            capabilities: &self.capabilities,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabel {
    /// `succeeded`, `refused` or `rolled_back`.
    outcome: &'static str,
}

/// Called with the plugins loaded after every change of the table.
pub type OnChange = Box<dyn Fn(&[Arc<Plugin>]) + Send + Sync>;

pub struct Lifecycle {
    runtime: Arc<Runtime>,
    table: PluginTable,
    settings: ArcSwap<Settings>,
    /// Reloads and config changes run one at a time.
    lock: tokio::sync::Mutex<()>,
    reloads: Family<ReloadLabel, Counter>,
    on_change: OnceLock<OnChange>,
}

impl Lifecycle {
    pub fn new(
        runtime: Arc<Runtime>,
        settings: Settings,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Self {
        let reloads = Family::default();
        registry.register(
            "plugin_reloads",
            "Plugin versions loaded, refused or rolled back",
            reloads.clone(),
        );
        Self {
            runtime,
            table: PluginTable::default(),
            settings: ArcSwap::from_pointee(settings),
            lock: tokio::sync::Mutex::new(()),
            reloads,
            on_change: OnceLock::new(),
        }
    }

    /// Has `callback` told of the loaded plugins after every change (once, at start).
    pub fn on_change(&self, callback: OnChange) {
        if self.on_change.set(callback).is_err() {
            tracing::error!("the lifecycle's change callback was set twice");
        }
    }

    fn changed(&self) {
        if let Some(callback) = self.on_change.get() {
            callback(&self.table.all());
        }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn table(&self) -> &PluginTable {
        &self.table
    }

    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.table.get(name)
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    fn count(&self, outcome: &'static str) {
        self.reloads.get_or_create(&ReloadLabel { outcome }).inc();
    }

    /// Counts one request's outcome of `plugin`; ends its probation with a rollback when
    /// its first requests failed as often as the breaker's rule opens a circuit for.
    pub fn judge(&self, plugin: &Plugin, failed: bool) {
        let rules = self.settings.load().probation_rules;
        let Some(Verdict::Failed { failed, total }) = plugin.probation.record(failed, &rules)
        else {
            return;
        };
        let still_current = self
            .table
            .get(&plugin.name)
            .is_some_and(|p| p.version == plugin.version);
        if still_current {
            let reason = format!(
                "version {} failed {failed} of its first {total} requests (error threshold {}%)",
                plugin.version, rules.error_percent
            );
            if let Err(e) = self.rollback(&plugin.name, &reason) {
                tracing::error!(plugin = %plugin.name, error = %e, "automatic rollback failed");
            }
        }
    }

    /// Puts the previous version of `name` back, and says why in the log.
    pub fn rollback(&self, name: &str, reason: &str) -> Result<Arc<Plugin>, RollbackError> {
        let restored = self.table.rollback(name, reason)?;
        tracing::warn!(plugin = %name, version = %restored.version, %reason, "plugin rolled back");
        self.count("rolled_back");
        self.changed();
        Ok(restored)
    }

    /// The grants and limits every loaded plugin would have under `settings`, or every
    /// problem: a change that would refuse a loaded plugin (it imports what is withdrawn,
    /// or asks more memory than a slot) is refused as a whole.
    pub fn revalidate(
        &self,
        settings: &Settings,
    ) -> Result<Vec<(Arc<Plugin>, Configured)>, Vec<String>> {
        let empty = PluginSection::default();
        let mut configured = Vec::new();
        let mut problems = Vec::new();
        for plugin in self.table.all() {
            let load = settings.for_plugin(&plugin.name, &empty);
            match self.runtime.loader().configure(
                &plugin.name,
                plugin.world,
                plugin.http_export,
                &plugin.imports,
                load,
            ) {
                Ok(c) => configured.push((plugin, c)),
                Err(e) => problems.push(format!("plugin {}: {e}", plugin.name)),
            }
        }
        if problems.is_empty() {
            Ok(configured)
        } else {
            Err(problems)
        }
    }

    /// Puts `settings` and the grants [`Lifecycle::revalidate`] made of them in force, then
    /// looks again at the plugins refused under the old ones.
    pub fn apply(self: &Arc<Self>, settings: Settings, configured: Vec<(Arc<Plugin>, Configured)>) {
        self.settings.store(Arc::new(settings));
        for (plugin, configured) in configured {
            plugin.reconfigure(configured);
        }
        self.changed();
        let refused = self.table.refused_names();
        if !refused.is_empty() {
            for name in &refused {
                self.table.forget_refusal(name);
            }
            let lifecycle = self.clone();
            tokio::spawn(async move {
                if let Err(e) = lifecycle.reload().await {
                    tracing::error!(error = %e, "cannot read the plugins folder");
                }
            });
        }
    }

    /// Holds off reloads while the config changes.
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    /// Loads `bytes` as the plugin `name` on the blocking pool (compiling takes a while).
    async fn load(
        &self,
        name: &str,
        path: &std::path::Path,
        bytes: Vec<u8>,
    ) -> Result<Arc<Plugin>, LoadError> {
        let runtime = self.runtime.clone();
        let settings = self.settings();
        let (name, path) = (name.to_string(), path.to_path_buf());
        tokio::task::spawn_blocking(move || {
            let empty = PluginSection::default();
            runtime.load(&name, &path, &bytes, settings.for_plugin(&name, &empty))
        })
        .await
        .unwrap_or_else(|e| {
            Err(LoadError::Instantiate(format!(
                "the loading task failed: {e}"
            )))
        })
    }
}
