//! The WIT glue of the `broker` import: a plugin publishes only on the topics
//! `[plugin.<name>] publish` lists.

use bytes::Bytes;

use super::{BrokerError, BrokerState};
use crate::bindings::Error;
use crate::bindings::micro_api::host::broker::Host;

impl Host for &mut BrokerState {
    #[tracing::instrument(name = "broker.publish", skip_all, fields(otel.kind = "producer", messaging.destination.name = %topic))]
    async fn publish(&mut self, topic: String, payload: Vec<u8>) -> Result<(), Error> {
        if !self.topics.contains(&topic) {
            return Err(Error::Forbidden(format!(
                "topic {topic:?} is not granted to {}; list it in [plugin.{}] publish",
                self.plugin, self.plugin
            )));
        }
        self.broker
            .publish(&topic, Bytes::from(payload))
            .map_err(|e| match e {
                BrokerError::TooLarge { .. } => Error::Invalid(e.to_string()),
                other => Error::Unavailable(other.to_string()),
            })
    }
}
