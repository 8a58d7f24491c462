//! The `broker` import: a plugin publishes only on the topics `[plugin.<name>] publish`
//! lists.

use std::sync::Arc;

use bytes::Bytes;

use super::{Broker, BrokerError};
use crate::app::App;
use crate::bindings::Error;
use crate::bindings::micro_api::host::broker::Host;
use crate::plugins::Plugin;

pub struct BrokerState {
    plugin: String,
    topics: Vec<String>,
    broker: Arc<Broker>,
}

impl BrokerState {
    pub fn prepare(app: &App, plugin: &Plugin) -> Self {
        Self {
            plugin: plugin.name.clone(),
            topics: plugin.grants.publish.clone(),
            broker: app.broker.clone(),
        }
    }
}

impl Host for &mut BrokerState {
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
