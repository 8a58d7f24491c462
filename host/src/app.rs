//! The application: the capabilities every plugin is handed, built once from the config,
//! plus the runtime and the plugin table. Cheap to share (`Arc<App>`).

use std::sync::Arc;

use crate::broker::{Broker, BrokerError, BrokerStats, Delivery, Subscription};
use crate::config::layers::{Layered, Origins};
use crate::config::live::{LiveConfig, Source};
use crate::config::{Config, RegistryBackend};
use crate::crypto::{Crypto, CryptoError};
use crate::front::router::Router;
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
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
    #[error("plugins folder {path}: {source}")]
    PluginsDir {
        path: String,
        source: std::io::Error,
    },
}

pub struct App {
    /// The config the host started with: what listeners, database, pool, registry and
    /// broker were built from. What requests read is [`App::current_config`].
    pub config: Arc<Config>,
    /// The config in force, swapped by a change applied while the host runs.
    pub live: LiveConfig,
    /// The routes in force.
    pub router: arc_swap::ArcSwap<Router>,
    pub runtime: Runtime,
    pub plugins: PluginTable,
    pub registry: Arc<dyn Registry>,
    pub breakers: Breakers,
    pub remote: RemoteCalls,
    pub database: Arc<dyn Database>,
    pub crypto: Arc<Crypto>,
    pub broker: Arc<Broker>,
    /// Reloads run one at a time.
    pub reload_lock: tokio::sync::Mutex<()>,
}

impl App {
    /// Connects the database (running its migrations), loads the signing key, starts the
    /// runtime and the registry, and loads the plugins folder. `rpc_address` is where other
    /// nodes reach this one, if it has an rpc listener.
    pub async fn new(config: Config, rpc_address: Option<String>) -> Result<Arc<Self>, AppError> {
        let layered = Layered {
            config,
            origins: Origins::default(),
        };
        let live = LiveConfig::new(layered, Source::default(), Default::default());
        Self::with_live(live, rpc_address).await
    }

    /// [`App::new`] with a config that can change while the host runs.
    pub async fn with_live(
        live: LiveConfig,
        rpc_address: Option<String>,
    ) -> Result<Arc<Self>, AppError> {
        let config = live.current();
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
        let (broker, deliveries) = Broker::start(&config.broker).await?;
        let app = Arc::new(Self {
            broker,
            router: arc_swap::ArcSwap::from_pointee(Router::new(&config.route)),
            live,
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
        tokio::spawn(run_deliveries(Arc::downgrade(&app), deliveries));
        Ok(app)
    }

    /// The config in force now.
    pub fn current_config(&self) -> Arc<Config> {
        self.live.current()
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
        self.sync_subscriptions();
    }

    /// Subscribes to the topics of the subscriber plugins now loaded, and only those: a host
    /// that does not run a subscriber never takes its messages from the queue group.
    fn sync_subscriptions(&self) {
        let wanted = self
            .plugins
            .all()
            .iter()
            .filter(|p| p.world == World::Subscriber)
            .flat_map(|p| {
                p.grants.subscribe.iter().map(|topic| Subscription {
                    plugin: p.name.clone(),
                    topic: topic.clone(),
                })
            })
            .collect();
        self.broker.subscribe(wanted);
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
        let rules = self.current_config().breaker_settings("default");
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

/// Runs every delivery on its subscriber plugin, at most `[broker] max_in_flight` at once,
/// each on its own task: a slow or trapping subscriber holds its own slot, never a
/// publisher. Ends with the app.
async fn run_deliveries(
    app: std::sync::Weak<App>,
    mut deliveries: tokio::sync::mpsc::Receiver<Delivery>,
) {
    let Some(max_in_flight) = app.upgrade().map(|a| a.config.broker.max_in_flight) else {
        return;
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    while let Some(delivery) = deliveries.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(app) = app.upgrade() else {
            return;
        };
        let plugin = app
            .plugins
            .get(&delivery.plugin)
            .filter(|p| p.grants.subscribe.contains(&delivery.topic));
        let Some(plugin) = plugin else {
            // Unloaded (or its grant withdrawn) since the subscription was made.
            BrokerStats::count(&app.broker.stats.dropped);
            continue;
        };
        tokio::spawn(async move {
            let _slot = slot;
            let Delivery { topic, payload, .. } = delivery;
            match invoke::deliver_message(&app, plugin.clone(), topic.clone(), payload).await {
                Ok(()) => BrokerStats::count(&app.broker.stats.delivered),
                Err(e) => {
                    BrokerStats::count(&app.broker.stats.failed);
                    tracing::warn!(plugin = %plugin.name, %topic, error = %e, "message not handled");
                }
            }
        });
    }
}
