//! An rpc call of a service plugin: `handle(method, payload)`.

use std::sync::Arc;

use super::{Ended, on_fresh_instance};
use crate::capability::CallContext;
use crate::rpc::Error;
use crate::runtime::plugin::Entry;
use crate::runtime::{Plugin, Runtime};

/// Calls `handle(method, payload)` of a service plugin, within what is left of the
/// caller's deadline and the plugin's own.
pub async fn call_service(
    runtime: &Runtime,
    plugin: &Arc<Plugin>,
    method: &str,
    payload: &[u8],
    call: CallContext,
) -> Result<Vec<u8>, Error> {
    let Entry::Service(pre) = &plugin.entry else {
        return Err(Error::Unavailable(format!(
            "{} is not a service",
            plugin.name
        )));
    };
    let answered = on_fresh_instance(runtime, plugin, call, async |store| {
        let service = with_pool_room!(runtime, pre.instantiate_async(&mut *store))?;
        service
            .micro_api_host_handler()
            .call_handle(store, method, payload)
            .await
    })
    .await;
    match answered {
        Ok(answer) => answer,
        Err(Ended::Timeout) => Err(Error::Timeout),
        Err(Ended::Trap) => Err(Error::Unavailable(format!("{} failed", plugin.name))),
        Err(Ended::NoRoom) => Err(Error::Unavailable(format!(
            "no instance of {} is free",
            plugin.name
        ))),
    }
}
