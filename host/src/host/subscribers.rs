//! The host's side of the broker's delivery loop: a delivery runs on its subscriber plugin
//! if that plugin is still loaded and still subscribes to the topic.

use std::sync::Weak;

use crate::broker::{Delivery, Subscribers, Undelivered};
use crate::plugins::Lifecycle;
use crate::runtime::invoke;

pub struct Deliveries {
    /// Weak: the delivery loop ends with the host.
    lifecycle: Weak<Lifecycle>,
}

impl Deliveries {
    pub fn new(lifecycle: Weak<Lifecycle>) -> Self {
        Self { lifecycle }
    }
}

#[async_trait::async_trait]
impl Subscribers for Deliveries {
    async fn deliver(&self, delivery: Delivery) -> Result<(), Undelivered> {
        let lifecycle = self.lifecycle.upgrade().ok_or(Undelivered::Gone)?;
        let plugin = lifecycle
            .get(&delivery.plugin)
            .filter(|p| {
                let configured = p.configured();
                configured.grants.broker.subscribe.contains(&delivery.topic)
            })
            .ok_or(Undelivered::Gone)?;
        let result = invoke::deliver_message(
            lifecycle.runtime(),
            &plugin,
            &delivery.topic,
            &delivery.payload,
        )
        .await;
        lifecycle.judge(&plugin, result.is_err());
        result.map_err(|e| Undelivered::Failed(e.to_string()))
    }
}
