//! Service discovery. Each node publishes the services it serves; callers look endpoints
//! up by name. The in-memory backend serves one node; the etcd backend many. Both are a
//! [`Registry`].

mod etcd;
mod host;
mod memory;

use std::sync::Arc;

pub use etcd::EtcdRegistry;
pub use memory::MemoryRegistry;

use crate::app::App;

/// Where a service is served.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    pub service: String,
    pub node: String,
    /// The node's internal rpc address; empty when it has none (single node).
    pub address: String,
    /// Served by this very process.
    pub local: bool,
}

/// A registry backend.
///
/// Lookups are synchronous on purpose: they read a local view kept up to date in the
/// background, so a call never waits on the network to find its callee, and an outage of
/// the registry leaves the last known view in place.
#[async_trait::async_trait]
pub trait Registry: Send + Sync {
    /// Makes `services` the whole set this node serves, replacing the previous set. Applied
    /// in the background by remote backends, which keep retrying until it holds.
    fn publish(&self, services: Vec<String>);
    /// Removes everything this node published (before a shutdown).
    async fn withdraw(&self);
    /// Endpoints of `service`, local ones first.
    fn endpoints(&self, service: &str) -> Vec<Endpoint>;
    /// Every service name with at least one endpoint.
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
