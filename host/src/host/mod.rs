//! The host: every part built once from the config and wired together, and the one place a
//! config change is applied from ([`Host::reconfigure`]). It owns no policy of its own:
//! capabilities, the runtime, the plugin lifecycle, the gateway and the node-to-node
//! dispatch each keep theirs; the host only composes them. Cheap to share (`Arc<Host>`).

mod reconfigure;
mod subscribers;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;

use crate::breaker::{BreakerMetrics, BreakerStatus, Breakers};
use crate::broker::{Broker, BrokerStatus};
use crate::capability::{InitError, Shared, World};
use crate::config::Config;
use crate::config::live::LiveConfig;
use crate::front::{FrontMetrics, Gateway, GatewayConfig, Stopper};
use crate::node::allow::Permissions;
use crate::node::listener::RpcListener;
use crate::node::login_checks::LoginChecks;
use crate::node::tls::{NodeTls, TlsError};
use crate::node::{Dispatch, RemoteNodes};
use crate::plugins::Lifecycle;
use crate::runtime::{Capabilities, Loader, Runtime, RuntimeError};
use crate::settings::SecretDigest;
use crate::sql::Database;
use crate::telemetry::AccessLog;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Capability(#[from] InitError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("plugins folder {path}: {source}")]
    PluginsDir {
        path: String,
        source: std::io::Error,
    },
}

pub struct Host {
    live: Arc<LiveConfig>,
    metrics: Arc<Registry>,
    breakers: Arc<Breakers>,
    lifecycle: Arc<Lifecycle>,
    gateway: Arc<Gateway>,
    front_metrics: Arc<FrontMetrics>,
    registry: Arc<dyn crate::registry::Backend>,
    database: Arc<dyn Database>,
    broker: Broker,
    rpc_listener: Arc<RpcListener>,
    /// Tells the listeners (and readiness) that the host is stopping.
    stopper: Stopper,
}

impl Host {
    /// Starts every capability from its section (connecting the database, loading the
    /// keys, joining the registry), the runtime and the gateway, then loads the plugins
    /// folder. `rpc_address` is where other nodes reach this one, if it has an rpc
    /// listener.
    pub async fn start(
        live: Arc<LiveConfig>,
        rpc_address: Option<String>,
    ) -> Result<Arc<Self>, HostError> {
        let config = live.current();
        let mut metrics = crate::telemetry::metrics::registry();
        let breakers = Arc::new(Breakers::new(
            config.breaker.clone(),
            BreakerMetrics::register(&mut metrics),
        ));
        let mut shared = Shared {
            node_id: &config.server.node_id,
            rpc_address: rpc_address.as_deref(),
            data_dir: &config.data_dir,
            metrics: &mut metrics,
            breakers: &breakers,
        };
        let capabilities = Capabilities::init(&config.capabilities, &mut shared).await?;
        let registry = capabilities.registry.backend();
        let database = capabilities.database.database();
        let keys = capabilities.auth.keys();
        let broker = capabilities.broker.clone();
        let rpc = capabilities.rpc.clone();
        let plugins = &config.plugins;
        let loader = Loader::new(&plugins.cache_dir, plugins.pool)?;
        let runtime = Runtime::new(loader, capabilities, &mut metrics);
        let lifecycle = Arc::new(Lifecycle::new(
            Arc::new(runtime),
            config.plugin_settings(),
            &mut metrics,
        ));
        let tls = config.cluster.tls.as_ref().map(NodeTls::load).transpose()?;
        rpc.bind(Arc::new(Dispatch::new(
            registry.clone(),
            RemoteNodes::new(&config.cluster, tls.as_ref()),
            Arc::downgrade(&lifecycle),
        )));
        let front_metrics = Arc::new(FrontMetrics::register(&mut metrics));
        let gateway = Arc::new(Gateway::new(
            GatewayConfig {
                routes: &config.route,
                login_limit: &config.login_limit,
                body_limit: config.server.body_limit,
                request_timeout: Duration::from_millis(config.front.request_timeout_ms),
                max_requests_per_address: config.front.max_requests_per_address,
                shedding: config.front.shedding(),
                access_log: config.capabilities.telemetry.access_log == AccessLog::Json,
            },
            lifecycle.clone(),
            keys,
            front_metrics.clone(),
        ));
        lifecycle.on_change(publish_on_change(registry.clone(), broker.clone()));
        broker.bind(Arc::new(subscribers::Deliveries::new(Arc::downgrade(
            &lifecycle,
        ))));
        let rpc_listener = Arc::new(RpcListener {
            lifecycle: lifecycle.clone(),
            secret: config
                .cluster
                .secret
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(SecretDigest::of),
            body_limit: config.server.body_limit,
            tls: tls.map(|tls| tls.acceptor),
            permissions: Permissions::new(&config.cluster.allow),
            login_checks: LoginChecks::new(
                gateway.login_limiter().cloned(),
                &config.cluster.login_checks,
            ),
            metrics: front_metrics.clone(),
        });
        let host = Arc::new(Self {
            live,
            metrics: Arc::new(metrics),
            breakers,
            lifecycle,
            gateway,
            front_metrics,
            registry,
            database,
            broker,
            rpc_listener,
            stopper: Stopper::default(),
        });
        host.lifecycle
            .reload()
            .await
            .map_err(|source| HostError::PluginsDir {
                path: config.plugins.dir.display().to_string(),
                source,
            })?;
        Ok(host)
    }

    /// A host on `config` alone, with no listener and no config watching (benchmarks,
    /// tools).
    pub async fn of(config: Config) -> Result<Arc<Self>, HostError> {
        Self::start(Arc::new(LiveConfig::of(config)), None).await
    }

    /// The config in force now.
    pub fn config(&self) -> Arc<Config> {
        self.live.current()
    }

    pub fn live(&self) -> &Arc<LiveConfig> {
        &self.live
    }

    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.lifecycle
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    pub fn front_metrics(&self) -> &Arc<FrontMetrics> {
        &self.front_metrics
    }

    /// The listeners' stop signal and readiness' stopping flag.
    pub fn stopper(&self) -> &Stopper {
        &self.stopper
    }

    pub fn rpc_listener(&self) -> &Arc<RpcListener> {
        &self.rpc_listener
    }

    pub fn registry(&self) -> &Arc<dyn crate::registry::Backend> {
        &self.registry
    }

    pub fn database(&self) -> &Arc<dyn Database> {
        &self.database
    }

    pub fn breakers(&self) -> Vec<BreakerStatus> {
        self.breakers.statuses()
    }

    pub fn broker(&self) -> BrokerStatus {
        self.broker.status()
    }

    /// Every series, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        crate::telemetry::metrics::render(&self.metrics)
    }
}

/// After every change of the plugin table: publish the services this node now serves, and
/// subscribe to the topics of the subscriber plugins now loaded, and only those (a host
/// that does not run a subscriber never takes its messages from the queue group).
fn publish_on_change(
    registry: Arc<dyn crate::registry::Backend>,
    broker: Broker,
) -> crate::plugins::OnChange {
    Box::new(move |plugins| {
        let served = plugins
            .iter()
            .filter(|p| p.world == World::Service)
            .map(|p| p.name.to_string())
            .collect();
        registry.publish(served);
        let wanted = plugins
            .iter()
            .filter(|p| p.world == World::Subscriber)
            .flat_map(|p| {
                let configured = p.configured();
                configured
                    .grants
                    .broker
                    .subscribe
                    .iter()
                    .map(|topic| crate::broker::Subscription {
                        plugin: p.name.to_string(),
                        topic: topic.clone(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        broker.subscribe(wanted);
    })
}
