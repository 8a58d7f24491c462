//! An rpc call of a service plugin: `handle(method, payload)`.

use std::sync::Arc;

use super::{Ended, on_fresh_instance};
use crate::capability::CallContext;
use crate::rpc::Error;
use crate::runtime::plugin::Entry;
use crate::runtime::{Plugin, Runtime};

/// How an rpc call of a service plugin ended.
pub struct Served {
    /// What the caller gets.
    pub answer: Result<Vec<u8>, Error>,
    /// Whether the version itself failed (a trap, or killed at its deadline): what a new
    /// version's probation judges. An error the plugin returns (often a dependency's state
    /// passed on) and a full instance pool are not its fault.
    pub own_failure: bool,
}

/// Calls `handle(method, payload)` of a service plugin, within what is left of the
/// caller's deadline and the plugin's own.
pub async fn call_service(
    runtime: &Runtime,
    plugin: &Arc<Plugin>,
    method: &str,
    payload: &[u8],
    call: CallContext,
) -> Served {
    let Entry::Service(pre) = &plugin.entry else {
        let not_a_service = format!("{} is not a service", plugin.name);
        return Served {
            answer: Err(Error::Unavailable(not_a_service)),
            own_failure: false,
        };
    };
    let answered = on_fresh_instance(runtime, plugin, call, async |store| {
        let service = with_pool_room!(runtime, pre.instantiate_async(&mut *store))?;
        service
            .micro_api_host_handler()
            .call_handle(store, method, payload)
            .await
    })
    .await;
    let own_failure = matches!(answered, Err(Ended::Timeout | Ended::Trap));
    let answer = match answered {
        Ok(answer) => answer,
        Err(Ended::Timeout) => Err(Error::Timeout),
        Err(Ended::Trap) => Err(Error::Unavailable(format!("{} failed", plugin.name))),
        Err(Ended::NoRoom) => Err(Error::Unavailable(format!(
            "no instance of {} is free",
            plugin.name
        ))),
    };
    Served {
        answer,
        own_failure,
    }
}
