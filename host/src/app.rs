//! The application: the capabilities every plugin is handed, built once from the config,
//! plus the runtime and the plugin table. Cheap to share (`Arc<App>`).

use std::sync::Arc;

use crate::config::{Config, RegistryBackend};
use crate::crypto::{Crypto, CryptoError};
use crate::plugins::{PluginTable, World};
use crate::registry::{Endpoint, MemoryRegistry, Registry};
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
    pub database: Arc<dyn Database>,
    pub crypto: Arc<Crypto>,
}

impl App {
    /// Connects the database (running its migrations), loads the signing key, starts the
    /// runtime and loads the plugins folder.
    pub async fn new(config: Config) -> Result<Arc<Self>, AppError> {
        let config = Arc::new(config);
        let database: Arc<dyn Database> =
            sql::connect(&config.database.url, config.database.max_connections)
                .await?
                .into();
        let crypto = Arc::new(Crypto::from_config(&config.auth)?);
        let runtime = Runtime::new(&config.plugins.cache_dir)?;
        let registry: Arc<dyn Registry> = match config.registry.backend {
            RegistryBackend::Memory => Arc::new(MemoryRegistry::default()),
        };
        let app = Arc::new(Self {
            breakers: Breakers::new(config.clone()),
            config,
            runtime,
            plugins: PluginTable::default(),
            registry,
            database,
            crypto,
        });
        app.load_plugins()?;
        Ok(app)
    }

    /// (Re)loads the plugins folder and registers every service it serves.
    pub fn load_plugins(&self) -> Result<(), AppError> {
        let dir = &self.config.plugins.dir;
        std::fs::create_dir_all(dir)
            .and_then(|()| self.plugins.load_dir(&self.runtime, &self.config, dir))
            .map_err(|source| AppError::PluginsDir {
                path: dir.display().to_string(),
                source,
            })?;
        let node = &self.config.server.node_id;
        let served: Vec<String> = self
            .plugins
            .all()
            .iter()
            .filter(|p| p.world == World::Service)
            .map(|p| p.name.clone())
            .collect();
        for service in self.registry.services() {
            if !served.contains(&service) {
                self.registry.deregister(&service, node);
            }
        }
        for service in served {
            self.registry.register(Endpoint {
                service,
                node: node.clone(),
                address: String::new(),
                local: true,
            });
        }
        Ok(())
    }

    /// Runs `service.method` in this process (the rpc layer has already applied the grant
    /// check and the breaker).
    pub async fn call_local(
        self: &Arc<Self>,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        call: CallContext,
    ) -> Result<Vec<u8>, CallError> {
        let serves_here = self.registry.endpoints(service).iter().any(|e| e.local);
        let plugin = self
            .plugins
            .get(service)
            .filter(|p| serves_here && p.world == World::Service)
            .ok_or_else(|| CallError::Unavailable(format!("no endpoint serves {service}")))?;
        invoke::call_service(self, plugin, method.to_string(), payload, call).await
    }
}
