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
mod service;
mod subscriber;

pub use http::{HttpInvokeError, handle_http};
pub use service::call_service;
pub use subscriber::{DeliveryError, deliver_message};

use super::metrics::Event;
use super::{Plugin, is_deadline_trap};

/// How a guest call ended, from the host's side.
enum Ended {
    Timeout,
    Trap,
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
