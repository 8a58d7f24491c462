//! The WIT glue of the `rpc` import.

use super::{Error, RpcState};
use crate::bindings::micro_api::host::rpc::Host;

impl Host for &mut RpcState {
    async fn call(
        &mut self,
        service: String,
        method: String,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        let result = RpcState::call(self, &service, &method, payload).await;
        if let Err(e) = &result {
            tracing::debug!(%service, %method, error = %e, "rpc failed");
        }
        result
    }
}
