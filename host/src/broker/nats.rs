//! The NATS backend (`async-nats`, core NATS): subjects `<prefix>.<topic>`, one queue group
//! `<prefix>.<plugin>` per subscribing plugin, so when several hosts run the same subscriber
//! each message is handled by one of them.
//!
//! The client reconnects by itself, forever, and re-subscribes after a reconnect. Core NATS
//! keeps nothing for a subscriber that is away: a message published while the connection is
//! down may be lost (at most once), never delivered twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::Mutex;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::{Backend, BrokerConfig, BrokerStats, Delivery, Fate, Subscription, hand_over};

pub struct Nats {
    client: async_nats::Client,
    prefix: String,
    deliveries: mpsc::Sender<Delivery>,
    stats: BrokerStats,
    /// The task of each wanted subscription.
    tasks: Mutex<BTreeMap<Subscription, tokio::task::AbortHandle>>,
    /// The subscriptions the server has acknowledged.
    confirmed: Arc<Mutex<BTreeSet<Subscription>>>,
}

impl Nats {
    /// Connects in the background (the host starts even while NATS is down) and logs every
    /// change of the connection.
    pub async fn start(
        config: &BrokerConfig,
        deliveries: mpsc::Sender<Delivery>,
        stats: BrokerStats,
    ) -> Result<Self, super::BrokerError> {
        let client = async_nats::ConnectOptions::new()
            .name("micro-api")
            .retry_on_initial_connect()
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("NATS connected"),
                    async_nats::Event::Disconnected => tracing::warn!("NATS disconnected"),
                    other => tracing::info!(event = %other, "NATS event"),
                }
            })
            .connect(config.url.as_str())
            .await
            .map_err(|e| super::BrokerError::Connect {
                url: crate::settings::redact_url(&config.url),
                message: e.to_string(),
            })?;
        Ok(Self {
            client,
            prefix: config.prefix.trim_end_matches('.').to_string(),
            deliveries,
            stats,
            tasks: Mutex::default(),
            confirmed: Arc::default(),
        })
    }

    /// Subscribes to `subscription` and hands its messages over until aborted.
    fn spawn_subscription(&self, subscription: Subscription) -> tokio::task::AbortHandle {
        let client = self.client.clone();
        let subject = format!("{}.{}", self.prefix, subscription.topic);
        let group = format!("{}.{}", self.prefix, subscription.plugin);
        let (deliveries, stats) = (self.deliveries.clone(), self.stats.clone());
        let confirmed = self.confirmed.clone();
        tokio::spawn(async move {
            let mut messages = loop {
                match client.queue_subscribe(subject.clone(), group.clone()).await {
                    Ok(messages) => break messages,
                    Err(e) => {
                        tracing::warn!(%subject, error = %e, "NATS subscribe failed, retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                }
            };
            // Acknowledged once a round trip after the SUB has completed.
            if client.flush().await.is_ok() {
                confirmed.lock().insert(subscription.clone());
                tracing::info!(%subject, %group, "NATS subscription active");
            }
            while let Some(message) = messages.next().await {
                hand_over(
                    &deliveries,
                    &stats,
                    Delivery {
                        plugin: subscription.plugin.clone(),
                        topic: subscription.topic.clone(),
                        payload: message.payload,
                    },
                );
            }
        })
        .abort_handle()
    }
}

#[async_trait::async_trait]
impl Backend for Nats {
    async fn send(&self, topic: &str, payload: Bytes) {
        let subject = format!("{}.{topic}", self.prefix);
        // While reconnecting the client buffers what it can; past that the message is lost,
        // as at-most-once allows.
        if let Err(e) = self.client.publish(subject, payload).await {
            self.stats.count(Fate::Dropped);
            tracing::warn!(%topic, error = %e, "NATS publish failed: message dropped");
        }
    }

    fn subscribe(&self, wanted: BTreeSet<Subscription>) {
        let mut tasks = self.tasks.lock();
        tasks.retain(|subscription, task| {
            let keep = wanted.contains(subscription);
            if !keep {
                // Dropping the subscriber (with its task) unsubscribes.
                task.abort();
                let mut confirmed = self.confirmed.lock();
                confirmed.remove(subscription);
            }
            keep
        });
        for subscription in wanted {
            if let std::collections::btree_map::Entry::Vacant(slot) = tasks.entry(subscription) {
                let task = self.spawn_subscription(slot.key().clone());
                slot.insert(task);
            }
        }
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        let confirmed = self.confirmed.lock();
        confirmed.iter().cloned().collect()
    }
}
