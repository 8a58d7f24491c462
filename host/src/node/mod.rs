//! Nodes of a cluster: where an rpc runs, and the wire between nodes.
//!
//! [`Dispatch`] is the rpc capability's transport: a call runs in this process when the
//! service is served here, else on the least busy healthy remote node ([`remote`]), found
//! through the registry. [`listener`] is the other end: other nodes call this one's
//! services on its internal rpc listener, authenticated by the cluster secret and, with
//! `[cluster.tls]`, mutual TLS ([`tls`]); each caller calls only what [`allow`] lets it, and
//! password checks are counted by the login limiter ([`login_checks`]).

pub mod allow;
mod config;
pub mod listener;
pub mod login_checks;
pub mod remote;
pub mod tls;

use std::sync::{Arc, Weak};

pub use config::{ClusterConfig, TlsConfig};
pub use remote::RemoteNodes;

use crate::capability::{CallContext, World};
use crate::plugins::Lifecycle;
use crate::registry::Backend;
use crate::rpc::{Error, Transport};
use crate::runtime::invoke;

/// Runs rpc calls where their service is served.
pub struct Dispatch {
    registry: Arc<dyn Backend>,
    remote: RemoteNodes,
    /// Weak: the lifecycle holds the runtime, which holds the rpc capability, which holds
    /// this.
    lifecycle: Weak<Lifecycle>,
}

impl Dispatch {
    pub fn new(
        registry: Arc<dyn Backend>,
        remote: RemoteNodes,
        lifecycle: Weak<Lifecycle>,
    ) -> Self {
        Self {
            registry,
            remote,
            lifecycle,
        }
    }

    /// Runs `service.method` in this process.
    pub async fn call_local(
        lifecycle: &Lifecycle,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        call: CallContext,
    ) -> Result<Vec<u8>, Error> {
        let plugin = lifecycle
            .get(service)
            .filter(|p| p.world == World::Service)
            .ok_or_else(|| Error::Unavailable(format!("no endpoint serves {service}")))?;
        let served =
            invoke::call_service(lifecycle.runtime(), &plugin, method, &payload, call).await;
        lifecycle.judge(&plugin, served.own_failure);
        served.answer
    }
}

#[async_trait::async_trait]
impl Transport for Dispatch {
    async fn call(
        &self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        call: CallContext,
    ) -> Result<Vec<u8>, Error> {
        // Served here: run here, whatever the registry says (a stopping node has left it,
        // and still answers what it accepted).
        if let Some(lifecycle) = self.lifecycle.upgrade()
            && lifecycle
                .get(service)
                .is_some_and(|p| p.world == World::Service)
        {
            return Self::call_local(&lifecycle, service, method, payload, call).await;
        }
        let endpoints = self.registry.endpoints(service);
        match self.remote.choose(&endpoints) {
            Some(endpoint) => self.remote.call(endpoint, method, payload, call).await,
            None => Err(Error::Unavailable(format!("no endpoint serves {service}"))),
        }
    }
}
