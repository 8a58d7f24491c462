//! Service discovery. Services register under their name; callers look endpoints up by
//! name. The in-memory backend serves one node; other backends (etcd) implement the same
//! [`Registry`] trait.

mod host;
mod memory;

use std::sync::Arc;

pub use memory::MemoryRegistry;

use crate::app::App;

/// Where a service is served.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    pub service: String,
    pub node: String,
    /// The node's rpc address; empty for a service in this process.
    pub address: String,
    pub local: bool,
}

/// A registry backend. Lookups are synchronous on purpose: they read a local view, so a
/// call never waits on the network to find its callee.
pub trait Registry: Send + Sync {
    fn register(&self, endpoint: Endpoint);
    fn deregister(&self, service: &str, node: &str);
    /// Endpoints of `service`, local ones first.
    fn endpoints(&self, service: &str) -> Vec<Endpoint>;
    /// Every registered service name.
    fn services(&self) -> Vec<String>;
}

/// Per-instance state of the `registry` import: read-only access to the registry.
pub struct RegistryState {
    registry: Arc<dyn Registry>,
}

impl RegistryState {
    pub fn prepare(app: &App) -> Self {
        Self {
            registry: app.registry.clone(),
        }
    }
}
