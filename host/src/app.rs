//! The application: the capabilities every plugin is handed, built once from the config,
//! plus the runtime and the plugin table. Cheap to share (`Arc<App>`).

use std::sync::Arc;

use crate::config::{Config, RegistryBackend};
use crate::crypto::{Crypto, CryptoError};
use crate::plugins::table::RollbackError;
use crate::plugins::{Plugin, PluginTable, World, reload};
use crate::registry::{EtcdRegistry, MemoryRegistry, Registry};
use crate::rpc::remote::RemoteCalls;
use crate::rpc::{Breakers, CallError};
use crate::runtime::state::CallContext;
use crate::runtime::{Runtime, RuntimeError, invoke};
use crate::sql::{self, Database, SqlError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("database: {0}")]
    Database(#[from] SqlError),
    #[error("signing key: {0}")]
    Crypto(#[from] CryptoError),
    #[error("plugins folder {path}: {source}")]
    PluginsDir {
        path: String,
        source: std::io::Error,
    },
}

pub struct App {
    pub config: Arc<Config>,
    pub runtime: Runtime,
    pub plugins: PluginTable,
    pub registry: Arc<dyn Registry>,
    pub breakers: Breakers,
    pub remote: RemoteCalls,
    pub database: Arc<dyn Database>,
    pub crypto: Arc<Crypto>,
    /// Reloads run one at a time.
    pub reload_lock: tokio::sync::Mutex<()>,
}

impl App {
    /// Connects the database (running its migrations), loads the signing key, starts the
    /// runtime and the registry, and loads the plugins folder. `rpc_address` is where other
    /// nodes reach this one, if it has an rpc listener.
    pub async fn new(config: Config, rpc_address: Option<String>) -> Result<Arc<Self>, AppError> {
        let config = Arc::new(config);
        let database: Arc<dyn Database> =
            sql::connect(&config.database.url, config.database.max_connections)
                .await?
                .into();
        let crypto = Arc::new(Crypto::from_config(&config.auth)?);
        let runtime = Runtime::new(&config.plugins.cache_dir, config.plugins.pool)?;
        let node = &config.server.node_id;
        let registry: Arc<dyn Registry> = match config.registry.backend {
            RegistryBackend::Memory => Arc::new(MemoryRegistry::new(node)),
            RegistryBackend::Etcd => EtcdRegistry::start(
                &config.registry,
                node,
                rpc_address.as_deref().unwrap_or_default(),
            ),
        };
        let app = Arc::new(Self {
            breakers: Breakers::new(config.clone()),
            remote: RemoteCalls::new(&config.cluster),
            config,
            runtime,
            plugins: PluginTable::default(),
            registry,
            database,
            crypto,
            reload_lock: tokio::sync::Mutex::new(()),
        });
        reload::reload(&app)
            .await
            .map_err(|source| AppError::PluginsDir {
                path: app.config.plugins.dir.display().to_string(),
                source,
            })?;
        Ok(app)
    }

    /// Publishes the services this node serves, as the plugin table now says.
    pub fn sync_registry(&self) {
        let served = self
            .plugins
            .all()
            .iter()
            .filter(|p| p.world == World::Service)
            .map(|p| p.name.clone())
            .collect();
        self.registry.publish(served);
    }

    /// Puts the previous version of `name` back, and says why in the log.
    pub fn rollback(&self, name: &str, reason: &str) -> Result<Arc<Plugin>, RollbackError> {
        let restored = self.plugins.rollback(name, reason)?;
        tracing::warn!(plugin = %name, version = %restored.version, %reason, "plugin rolled back");
        crate::telemetry::metrics::METRICS.reload("rolled_back");
        self.sync_registry();
        Ok(restored)
    }

    /// Counts one request of `plugin`; ends its probation with a rollback when its first
    /// requests failed as often as the breaker rules would open a circuit for.
    pub fn record_outcome(&self, plugin: &Plugin, failed: bool) {
        let Some((failures, total)) = plugin.record_outcome(failed) else {
            return;
        };
        let rules = self.config.breaker_settings("default");
        if failures * 100 >= rules.error_percent * total {
            let still_current = self
                .plugins
                .get(&plugin.name)
                .is_some_and(|p| p.version == plugin.version);
            if still_current {
                let reason = format!(
                    "version {} failed {failures} of its first {total} requests (error threshold {}%)",
                    plugin.version, rules.error_percent
                );
                if let Err(e) = self.rollback(&plugin.name, &reason) {
                    tracing::error!(plugin = %plugin.name, error = %e, "automatic rollback failed");
                }
            }
        }
    }

    /// Runs `service.method` where it is served: in this process when it can, else on the
    /// least busy healthy remote node (the rpc layer has already applied the grant check
    /// and the breaker).
    pub async fn call(
        self: &Arc<Self>,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        call: CallContext,
    ) -> Result<Vec<u8>, CallError> {
        let endpoints = self.registry.endpoints(service);
        if endpoints.iter().any(|e| e.local) && self.plugins.get(service).is_some() {
            return self.call_local(service, method, payload, call).await;
        }
        match self.remote.choose(&endpoints) {
            Some(endpoint) => self.remote.call(endpoint, method, payload, call).await,
            None => Err(CallError::Unavailable(format!(
                "no endpoint serves {service}"
            ))),
        }
    }

    /// Runs `service.method` in this process.
    pub async fn call_local(
        self: &Arc<Self>,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        call: CallContext,
    ) -> Result<Vec<u8>, CallError> {
        let plugin = self
            .plugins
            .get(service)
            .filter(|p| p.world == World::Service)
            .ok_or_else(|| CallError::Unavailable(format!("no endpoint serves {service}")))?;
        invoke::call_service(self, plugin, method.to_string(), payload, call).await
    }
}
