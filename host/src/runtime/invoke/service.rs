//! An rpc call of a service plugin: `handle(method, payload)`.

use std::sync::Arc;
use std::time::Instant;

use super::{Ended, ended};
use crate::capability::CallContext;
use crate::rpc::Error;
use crate::runtime::metrics::Event;
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
    plugin.counters.count(Event::Invoked);
    let deadline = call.deadline.min(Instant::now() + plugin.deadline());
    let mut store = runtime.new_store(plugin, CallContext { deadline, ..call });
    let current_span = store.data().capabilities.telemetry.current_span();
    let outcome = current_span
        .wrap(tokio::time::timeout_at(deadline.into(), async {
            let service = pre.instantiate_async(&mut store).await?;
            service
                .micro_api_host_handler()
                .call_handle(&mut store, method, payload)
                .await
        }))
        .await;
    match outcome {
        Ok(Ok(Ok(answer))) => Ok(answer),
        Ok(Ok(Err(refusal))) => Err(refusal),
        Ok(Err(trap)) => Err(failure(plugin, Some(trap))),
        Err(_elapsed) => Err(failure(plugin, None)),
    }
}

fn failure(plugin: &Plugin, error: Option<wasmtime::Error>) -> Error {
    match ended(plugin, error) {
        Ended::Timeout => Error::Timeout,
        Ended::Trap => Error::Unavailable(format!("{} failed", plugin.name)),
    }
}
