//! Service discovery as a capability. Each node publishes the services it serves; callers
//! look endpoints up by name. The in-memory backend serves one node, the etcd backend many;
//! both are a [`Backend`]. Plugins read it through the `registry` import (always granted);
//! the host publishes into it and rpc routes by it.

mod config;
mod etcd;
mod host;
mod memory;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

pub use config::{RegistryBackend, RegistryConfig};
pub use etcd::Etcd;
pub use memory::Memory;

use crate::capability::{Capability, InitError, Invocation, PluginSpec, Shared, StateOf};

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
pub trait Backend: Send + Sync {
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

/// The capability: the backend `[registry]` names.
pub struct Registry {
    backend: Arc<dyn Backend>,
}

impl Registry {
    /// The backend, for the host to publish into and for rpc to route by.
    pub fn backend(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }
}

/// Per-instance state of the `registry` import: read-only access to the registry.
pub struct RegistryState {
    backend: Arc<dyn Backend>,
}

impl Capability for Registry {
    const NAME: &'static str = "registry";
    const GRANT_KEYS: &'static [&'static str] = &[];
    type Config = RegistryConfig;
    type Grant = ();
    type State = RegistryState;

    fn problems(config: &RegistryConfig) -> Vec<String> {
        config.problems()
    }

    async fn init(config: &RegistryConfig, shared: &mut Shared<'_>) -> Result<Self, InitError> {
        let backend: Arc<dyn Backend> = match config.backend {
            RegistryBackend::Memory => Arc::new(Memory::new(shared.node_id)),
            RegistryBackend::Etcd => Etcd::start(
                config,
                shared.node_id,
                shared.rpc_address.unwrap_or_default(),
            ),
        };
        Ok(Self { backend })
    }

    fn link<T: StateOf<RegistryState>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        use crate::bindings::micro_api::host::registry;
        registry::add_to_linker::<T, HasSelf<RegistryState>>(linker, T::state)
    }

    fn configure(_: &RegistryConfig, _: &PluginSpec<'_>) -> Result<(), Vec<String>> {
        Ok(())
    }

    fn prepare(&self, _grant: &(), _invocation: &Invocation<'_>) -> RegistryState {
        RegistryState {
            backend: self.backend.clone(),
        }
    }
}
