//! Running one invocation: a fresh store and instance for an HTTP request, an rpc call or a
//! message, bounded by its deadline. A trap, a timeout or a memory bomb ends that
//! invocation alone; the outcome is counted once on the plugin's series and logged with
//! its name. Judging a new version by its outcomes is the lifecycle's: callers hand it the
//! result.
//!
//! The guest runs in the caller's task (the request's, or the calling guest's): a task of
//! its own costs a spawn and a cross-thread wake-up per call, a measured 4-9% of the
//! throughput (issue 4). An rpc caller that gives up (its breaker's timeout, its own
//! deadline) drops the callee's future, and with it the store: the callee stops there. An
//! HTTP guest moves to a task of its own when it is still running as the response goes out
//! (it streams the body) or as its client disconnects (`RunsToEnd`).

mod http;
mod reused;
mod service;
mod subscriber;

pub use http::{HttpInvokeError, handle_http};
pub use service::call_service;
pub use subscriber::{DeliveryError, deliver_message};

use std::time::Instant;

use wasmtime::Store;

use super::metrics::Event;
use super::{Plugin, PluginState, Runtime, is_deadline_trap};
use crate::capability::CallContext;

/// How a guest call ended, from the host's side.
enum Ended {
    Timeout,
    Trap,
    /// No instance could be made: the pool stayed full (a 503, not the plugin's fault).
    NoRoom,
}

/// Classifies, counts and logs a failed guest call (`None`: its deadline passed outside
/// the guest).
fn ended(plugin: &Plugin, error: Option<wasmtime::Error>) -> Ended {
    plugin.counters.count(Event::Failed);
    match error {
        None => {
            plugin.counters.count(Event::Killed);
            tracing::warn!(plugin = %plugin.name, version = %plugin.version, "plugin deadline exceeded");
            Ended::Timeout
        }
        Some(e) if e.is::<wasmtime::PoolConcurrencyLimitError>() => {
            tracing::warn!(plugin = %plugin.name, version = %plugin.version, "no instance for the call: the instance pool stayed full");
            Ended::NoRoom
        }
        Some(e) if is_deadline_trap(&e) => {
            plugin.counters.count(Event::Killed);
            tracing::warn!(plugin = %plugin.name, version = %plugin.version, "plugin interrupted at its deadline");
            Ended::Timeout
        }
        Some(e) => {
            plugin.counters.count(Event::Trapped);
            tracing::error!(plugin = %plugin.name, version = %plugin.version, error = %format!("{e:?}"), "plugin trapped");
            Ended::Trap
        }
    }
}

/// Runs `call` on a fresh instance of `plugin`, within `context`'s deadline and the
/// plugin's own, in the instance's span: the guest's answer, or how it ended (counted and
/// logged). The instance is counted as one invocation.
async fn on_fresh_instance<T>(
    runtime: &Runtime,
    plugin: &Plugin,
    context: CallContext,
    call: impl AsyncFnOnce(&mut Store<PluginState>) -> wasmtime::Result<T>,
) -> Result<T, Ended> {
    plugin.counters.count(Event::Invoked);
    let deadline = context.deadline.min(Instant::now() + plugin.deadline());
    let mut store = runtime.new_store(
        plugin,
        CallContext {
            deadline,
            ..context
        },
    );
    let current_span = store.data().capabilities.telemetry.current_span();
    let outcome = current_span
        .wrap(tokio::time::timeout_at(deadline.into(), call(&mut store)))
        .await;
    match outcome {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(trap)) => Err(ended(plugin, Some(trap))),
        Err(_elapsed) => Err(ended(plugin, None)),
    }
}
