//! A message handed to a subscriber plugin: `on-message(topic, payload)`.

use std::sync::Arc;
use std::time::Instant;

use super::{Ended, on_fresh_instance};
use crate::capability::CallContext;
use crate::rpc::Error;
use crate::runtime::metrics::Event;
use crate::runtime::plugin::Entry;
use crate::runtime::{Plugin, Runtime};
use crate::telemetry::TraceContext;

/// Why a subscriber did not take a message.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0} is not a subscriber")]
    NotSubscriber(String),
    #[error("the subscriber refused the message: {0}")]
    Refused(Error),
    #[error("the subscriber ran past its deadline")]
    Timeout,
    #[error("the subscriber trapped")]
    Trap,
    #[error("no instance of the subscriber is free")]
    NoRoom,
}

/// Calls `on-message(topic, payload)` of a subscriber plugin, within its deadline; a
/// message starts a trace of its own.
pub async fn deliver_message(
    runtime: &Runtime,
    plugin: &Arc<Plugin>,
    topic: &str,
    payload: &[u8],
) -> Result<(), DeliveryError> {
    let Entry::Subscriber(pre) = &plugin.entry else {
        return Err(DeliveryError::NotSubscriber(plugin.name.to_string()));
    };
    let context = CallContext {
        deadline: Instant::now() + plugin.deadline(),
        depth: 0,
        trace: TraceContext::new_root(),
    };
    let handled = on_fresh_instance(runtime, plugin, context, async |store| {
        let subscriber = with_pool_room!(runtime, pre.instantiate_async(&mut *store))?;
        subscriber
            .micro_api_host_message_handler()
            .call_on_message(store, topic, payload)
            .await
    })
    .await;
    match handled {
        Ok(Ok(())) => Ok(()),
        Ok(Err(refusal)) => {
            plugin.counters.count(Event::Failed);
            Err(DeliveryError::Refused(refusal))
        }
        Err(Ended::Timeout) => Err(DeliveryError::Timeout),
        Err(Ended::Trap) => Err(DeliveryError::Trap),
        Err(Ended::NoRoom) => Err(DeliveryError::NoRoom),
    }
}
