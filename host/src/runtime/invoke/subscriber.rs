//! A message handed to a subscriber plugin: `on-message(topic, payload)`.

use std::sync::Arc;
use std::time::Instant;

use super::{Ended, ended};
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
}

/// Calls `on-message(topic, payload)` of a subscriber plugin, within its deadline.
pub async fn deliver_message(
    runtime: &Runtime,
    plugin: &Arc<Plugin>,
    topic: &str,
    payload: &[u8],
) -> Result<(), DeliveryError> {
    let Entry::Subscriber(pre) = &plugin.entry else {
        return Err(DeliveryError::NotSubscriber(plugin.name.to_string()));
    };
    plugin.counters.count(Event::Invoked);
    let deadline = Instant::now() + plugin.deadline();
    let call = CallContext {
        deadline,
        depth: 0,
        trace: TraceContext::new_root(),
    };
    let mut store = runtime.new_store(plugin, call);
    let current_span = store.data().capabilities.telemetry.current_span();
    let outcome = current_span
        .wrap(tokio::time::timeout_at(deadline.into(), async {
            let subscriber = pre.instantiate_async(&mut store).await?;
            subscriber
                .micro_api_host_message_handler()
                .call_on_message(&mut store, topic, payload)
                .await
        }))
        .await;
    match outcome {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(refusal))) => {
            plugin.counters.count(Event::Failed);
            Err(DeliveryError::Refused(refusal))
        }
        Ok(Err(trap)) => Err(failure(plugin, Some(trap))),
        Err(_elapsed) => Err(failure(plugin, None)),
    }
}

fn failure(plugin: &Plugin, error: Option<wasmtime::Error>) -> DeliveryError {
    match ended(plugin, error) {
        Ended::Timeout => DeliveryError::Timeout,
        Ended::Trap => DeliveryError::Trap,
    }
}
