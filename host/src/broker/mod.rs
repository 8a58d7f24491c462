//! The `broker` capability: plugins publish messages on topics, and components of the
//! `subscriber` world are handed the messages of the topics they subscribe to, in this
//! process or, with NATS, on whichever host runs them.
//!
//! Delivery is at most once. Publishing only puts the message on a bounded queue and
//! returns: when the queue is full the message is dropped and counted, so a slow broker or a
//! slow subscriber never slows the request that published. A background task drains the
//! queue into the backend; the backend hands each message to the local subscriptions
//! (in-process) or to NATS (subjects `<prefix>.<topic>`, one queue group per subscribing
//! plugin so one host of several handles each message). Messages received for a
//! subscription are [`Delivery`]s the app runs on the subscriber plugin.

pub mod host;
pub mod nats;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::{BrokerBackend, BrokerConfig};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the broker's outgoing queue is full: the message was dropped")]
    QueueFull,
    #[error(
        "the message is {size} bytes, over the {limit} of topic {topic:?} ([broker] max_message_bytes, or [broker.topic.{topic:?}])"
    )]
    TooLarge {
        topic: String,
        size: usize,
        limit: usize,
    },
    #[error("cannot reach NATS at {url}: {message}")]
    Connect { url: String, message: String },
}

/// One subscribing plugin's interest in one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Subscription {
    pub plugin: String,
    pub topic: String,
}

/// A message to run on a subscriber plugin.
#[derive(Debug)]
pub struct Delivery {
    pub plugin: String,
    pub topic: String,
    pub payload: Bytes,
}

/// Counters shown under `GET /admin/broker`.
#[derive(Debug, Default, serde::Serialize)]
pub struct BrokerStats {
    /// Messages accepted by `publish`.
    pub published: AtomicU64,
    /// Messages dropped: the outgoing queue or the delivery queue was full.
    pub dropped: AtomicU64,
    /// Messages a subscriber plugin handled.
    pub delivered: AtomicU64,
    /// Deliveries whose plugin failed, trapped or timed out (not redelivered).
    pub failed: AtomicU64,
}

impl BrokerStats {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where published messages go, and where subscriptions come from.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// Sends one message of the outgoing queue; may wait (the queue's task calls it).
    async fn send(&self, topic: &str, payload: Bytes);
    /// Replaces the set of subscriptions this host serves.
    fn subscribe(&self, wanted: BTreeSet<Subscription>);
    /// Whether the backend is connected (always true in-process).
    fn connected(&self) -> bool;
    /// The subscriptions in force (for NATS: acknowledged by the server).
    fn subscriptions(&self) -> Vec<Subscription>;
}

/// Messages in one process: a published message goes to every local subscription of its
/// topic.
pub struct InProcess {
    subscriptions: std::sync::RwLock<BTreeSet<Subscription>>,
    deliveries: mpsc::Sender<Delivery>,
    stats: Arc<BrokerStats>,
}

#[async_trait::async_trait]
impl Backend for InProcess {
    async fn send(&self, topic: &str, payload: Bytes) {
        let targets: Vec<String> = self
            .subscriptions
            .read()
            .expect("subscriptions lock")
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
        *self.subscriptions.write().expect("subscriptions lock") = wanted;
    }

    fn connected(&self) -> bool {
        true
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        let subscriptions = self.subscriptions.read().expect("subscriptions lock");
        subscriptions.iter().cloned().collect()
    }
}

/// Queues a delivery for the subscriber plugins, or drops and counts it when they are
/// behind: a busy subscriber costs its own messages, never the publisher's time.
fn hand_over(deliveries: &mpsc::Sender<Delivery>, stats: &BrokerStats, delivery: Delivery) {
    if let Err(e) = deliveries.try_send(delivery) {
        BrokerStats::count(&stats.dropped);
        tracing::warn!(topic = %e.into_inner().topic, "broker delivery queue full: message dropped");
    }
}

/// The broker: the outgoing queue in front of a backend.
pub struct Broker {
    backend_name: &'static str,
    /// The section as started (`[broker]` applies at restart), for its message size caps.
    config: BrokerConfig,
    outgoing: mpsc::Sender<(String, Bytes)>,
    backend: Arc<dyn Backend>,
    pub stats: Arc<BrokerStats>,
}

/// `GET /admin/broker`.
#[derive(Debug, serde::Serialize)]
pub struct BrokerStatus<'a> {
    pub backend: &'static str,
    pub connected: bool,
    pub subscriptions: Vec<Subscription>,
    pub stats: &'a BrokerStats,
}

impl Broker {
    /// Starts the backend `config` names and the task draining the outgoing queue; returns
    /// the broker and the queue of deliveries for the app to run.
    pub async fn start(
        config: &BrokerConfig,
    ) -> Result<(Arc<Self>, mpsc::Receiver<Delivery>), BrokerError> {
        let stats = Arc::new(BrokerStats::default());
        let (deliveries, received) = mpsc::channel(config.queue_capacity);
        let (backend_name, backend): (_, Arc<dyn Backend>) = match config.backend {
            BrokerBackend::Memory => (
                "memory",
                Arc::new(InProcess {
                    subscriptions: Default::default(),
                    deliveries,
                    stats: stats.clone(),
                }),
            ),
            BrokerBackend::Nats => (
                "nats",
                Arc::new(nats::Nats::start(config, deliveries, stats.clone()).await?),
            ),
        };
        let (outgoing, mut queue) = mpsc::channel::<(String, Bytes)>(config.queue_capacity);
        let sender = backend.clone();
        tokio::spawn(async move {
            while let Some((topic, payload)) = queue.recv().await {
                sender.send(&topic, payload).await;
            }
        });
        let broker = Arc::new(Self {
            backend_name,
            config: config.clone(),
            outgoing,
            backend,
            stats,
        });
        Ok((broker, received))
    }

    /// Queues `payload` on `topic`; never waits. A payload over the topic's size cap is
    /// refused before it is queued.
    pub fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BrokerError> {
        let limit = self.config.max_message_bytes_of(topic);
        if payload.len() > limit {
            return Err(BrokerError::TooLarge {
                topic: topic.to_string(),
                size: payload.len(),
                limit,
            });
        }
        match self.outgoing.try_send((topic.to_string(), payload)) {
            Ok(()) => {
                BrokerStats::count(&self.stats.published);
                Ok(())
            }
            Err(_) => {
                BrokerStats::count(&self.stats.dropped);
                Err(BrokerError::QueueFull)
            }
        }
    }

    /// Serves exactly `wanted` from now on.
    pub fn subscribe(&self, wanted: BTreeSet<Subscription>) {
        self.backend.subscribe(wanted);
    }

    pub fn status(&self) -> BrokerStatus<'_> {
        BrokerStatus {
            backend: self.backend_name,
            connected: self.backend.connected(),
            subscriptions: self.backend.subscriptions(),
            stats: &self.stats,
        }
    }
}
