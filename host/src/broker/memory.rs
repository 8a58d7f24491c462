//! The in-process backend: a published message goes to every local subscription of its
//! topic.

use std::collections::BTreeSet;

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::mpsc;

use super::{Backend, BrokerStats, Delivery, Subscription, hand_over};

pub struct InProcess {
    pub(super) subscriptions: RwLock<BTreeSet<Subscription>>,
    pub(super) deliveries: mpsc::Sender<Delivery>,
    pub(super) stats: BrokerStats,
}

#[async_trait::async_trait]
impl Backend for InProcess {
    async fn send(&self, topic: &str, payload: Bytes) {
        let targets: Vec<String> = self
            .subscriptions
            .read()
            .iter()
            .filter(|s| s.topic == topic)
            .map(|s| s.plugin.clone())
            .collect();
        for plugin in targets {
            hand_over(
                &self.deliveries,
                &self.stats,
                Delivery {
                    plugin,
                    topic: topic.to_string(),
                    payload: payload.clone(),
                },
            );
        }
    }

    fn subscribe(&self, wanted: BTreeSet<Subscription>) {
        *self.subscriptions.write() = wanted;
    }

    fn connected(&self) -> bool {
        true
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        self.subscriptions.read().iter().cloned().collect()
    }
}
