//! The WIT glue of the `registry` import.

use super::RegistryState;
use crate::bindings::micro_api::host::registry::{Endpoint, Host};

impl Host for &mut RegistryState {
    #[tracing::instrument(name = "registry.endpoints", skip_all, fields(otel.kind = "internal", rpc.service = %service))]
    async fn endpoints(&mut self, service: String) -> Vec<Endpoint> {
        self.backend
            .endpoints(&service)
            .into_iter()
            .map(|e| Endpoint {
                node: e.node,
                address: e.address,
                local: e.local,
            })
            .collect()
    }
}
