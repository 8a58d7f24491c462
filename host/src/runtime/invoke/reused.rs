//! An HTTP request handed to a plugin whose instances are reused (`runtime::reuse`): one
//! that is alive and can take it serves it, or a new one. How it failed is told from
//! wasmtime's errors: an instance that ends early (a trap, a memory bomb, the clock) fails
//! each request in flight on it at once, and which of those ran out of time is told by the
//! request's own deadline.

use std::sync::Arc;
use std::time::Instant;

use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError, TrapOrPanicError};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::{Ended, ended};
use crate::capability::CallContext;
use crate::runtime::metrics::Event;
use crate::runtime::reuse::{NoRoom, RequestMeta, Reused};
use crate::runtime::{EPOCH_TICK, Plugin, is_deadline_trap};
use crate::telemetry::TraceContext;

use super::http::HttpInvokeError;

pub(super) async fn handle(
    plugin: &Arc<Plugin>,
    reused: &Reused,
    request: http::Request<WasiBody>,
    trace: TraceContext,
) -> Result<http::Response<HyperOutgoingBody>, HttpInvokeError> {
    plugin.counters.count(Event::Invoked);
    let call = CallContext {
        deadline: Instant::now() + plugin.deadline(),
        depth: 0,
        trace,
    };
    let outcome = reused.handle(RequestMeta { call }, request).await;
    outcome.map_err(|error| failed(plugin, error, call.deadline))
}

/// Counts, logs and names how a request on a reused instance failed.
fn failed(plugin: &Plugin, error: wasmtime::Error, deadline: Instant) -> HttpInvokeError {
    let unmade = match error.downcast_ref::<InstantiationError<RequestMeta>>() {
        Some(refused) => Some(format!("{:#}", refused.error)),
        None => error.is::<NoRoom>().then(|| NoRoom.to_string()),
    };
    if let Some(why) = unmade {
        plugin.counters.count(Event::Failed);
        tracing::warn!(plugin = %plugin.name, version = %plugin.version, error = %why, "no instance for the request");
        return HttpInvokeError::Unavailable;
    }
    let instance_ended = error.is::<TrapOrPanicError>();
    let timed_out = error.is::<ExpirationError>()
        || is_deadline_trap(&error)
        || (instance_ended && Instant::now() + EPOCH_TICK >= deadline);
    if timed_out {
        ended(plugin, None);
        return HttpInvokeError::Timeout;
    }
    if instance_ended || error.is::<wasmtime::Trap>() {
        return match ended(plugin, Some(error)) {
            Ended::Timeout => HttpInvokeError::Timeout,
            Ended::Trap => HttpInvokeError::Trap,
            Ended::NoRoom => HttpInvokeError::Unavailable,
        };
    }
    // The guest answered with an error code, or returned without a response.
    plugin.counters.count(Event::Failed);
    tracing::warn!(plugin = %plugin.name, version = %plugin.version, error = %format!("{error:#}"), "plugin answered without a response");
    HttpInvokeError::NoResponse
}
