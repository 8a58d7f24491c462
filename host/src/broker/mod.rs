//! Publish/subscribe as a capability: plugins publish messages on topics (`publish =
//! [...]`), and components of the `subscriber` world are handed the messages of the topics
//! they subscribe to (`subscribe = [...]`), in this process or, with NATS, on whichever
//! host runs them.
//!
//! Delivery is at most once. Publishing only puts the message on a bounded queue and
//! returns: when the queue is full the message is dropped and counted, so a slow broker or a
//! slow subscriber never slows the request that published. A background task drains the
//! queue into the [`Backend`]; the backend hands each message of a subscription to the
//! delivery queue, and the delivery loop ([`Broker::bind`]) runs each on its subscriber
//! through [`Subscribers`], which the host implements (the broker never sees a plugin).

mod config;
mod host;
mod memory;
mod nats;
mod stats;

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use wasmtime::component::{HasSelf, Linker};

pub use config::{BrokerBackend, BrokerConfig, valid_topic};
pub use stats::{BrokerStats, Fate};

use crate::capability::{Capability, InitError, Invocation, PluginSpec, Shared, StateOf, World};

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

/// Why a delivery was not handled.
#[derive(Debug, thiserror::Error)]
pub enum Undelivered {
    /// Its plugin is unloaded, or no longer subscribes to the topic.
    #[error("no subscriber takes it any more")]
    Gone,
    /// The plugin refused it, trapped or ran past its deadline.
    #[error("{0}")]
    Failed(String),
}

/// Runs deliveries on subscriber plugins: the host's side of the delivery loop.
#[async_trait::async_trait]
pub trait Subscribers: Send + Sync + 'static {
    async fn deliver(&self, delivery: Delivery) -> Result<(), Undelivered>;
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

/// Queues a delivery for the subscriber plugins, or drops and counts it when they are
/// behind: a busy subscriber costs its own messages, never the publisher's time.
fn hand_over(deliveries: &mpsc::Sender<Delivery>, stats: &BrokerStats, delivery: Delivery) {
    if let Err(e) = deliveries.try_send(delivery) {
        stats.count(Fate::Dropped);
        tracing::warn!(topic = %e.into_inner().topic, "broker delivery queue full: message dropped");
    }
}

struct Hub {
    backend_name: &'static str,
    /// The section as started (`[broker]` applies at restart), for its message size caps.
    config: BrokerConfig,
    outgoing: mpsc::Sender<(String, Bytes)>,
    backend: Arc<dyn Backend>,
    stats: BrokerStats,
    max_in_flight: usize,
    /// Taken by [`Broker::bind`], which runs the delivery loop.
    deliveries: Mutex<Option<mpsc::Receiver<Delivery>>>,
}

/// The capability: the outgoing queue in front of the backend `[broker]` names.
#[derive(Clone)]
pub struct Broker(Arc<Hub>);

/// `GET /admin/broker`.
#[derive(Debug, serde::Serialize)]
pub struct BrokerStatus {
    pub backend: &'static str,
    pub connected: bool,
    pub subscriptions: Vec<Subscription>,
    pub stats: serde_json::Value,
}

impl Broker {
    /// Queues `payload` on `topic`; never waits. A payload over the topic's size cap is
    /// refused before it is queued.
    pub fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BrokerError> {
        let limit = self.0.config.max_message_bytes_of(topic);
        if payload.len() > limit {
            return Err(BrokerError::TooLarge {
                topic: topic.to_string(),
                size: payload.len(),
                limit,
            });
        }
        match self.0.outgoing.try_send((topic.to_string(), payload)) {
            Ok(()) => {
                self.0.stats.count(Fate::Published);
                Ok(())
            }
            Err(_) => {
                self.0.stats.count(Fate::Dropped);
                Err(BrokerError::QueueFull)
            }
        }
    }

    /// Serves exactly `wanted` from now on.
    pub fn subscribe(&self, wanted: BTreeSet<Subscription>) {
        self.0.backend.subscribe(wanted);
    }

    pub fn status(&self) -> BrokerStatus {
        BrokerStatus {
            backend: self.0.backend_name,
            connected: self.0.backend.connected(),
            subscriptions: self.0.backend.subscriptions(),
            stats: self.0.stats.snapshot(),
        }
    }

    /// Starts the delivery loop: every delivery runs on its subscriber through
    /// `subscribers`, at most `[broker] max_in_flight` at once, each on its own task, so a
    /// slow or trapping subscriber holds its own slot, never a publisher.
    pub fn bind(&self, subscribers: Arc<dyn Subscribers>) {
        let Some(mut deliveries) = self.0.deliveries.lock().take() else {
            tracing::error!("the broker's delivery loop was started twice");
            return;
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(self.0.max_in_flight));
        let stats = self.0.stats.clone();
        tokio::spawn(async move {
            while let Some(delivery) = deliveries.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (subscribers, stats) = (subscribers.clone(), stats.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    let (plugin, topic) = (delivery.plugin.clone(), delivery.topic.clone());
                    match subscribers.deliver(delivery).await {
                        Ok(()) => stats.count(Fate::Delivered),
                        Err(Undelivered::Gone) => stats.count(Fate::Dropped),
                        Err(Undelivered::Failed(error)) => {
                            stats.count(Fate::Failed);
                            tracing::warn!(%plugin, %topic, %error, "message not handled");
                        }
                    }
                });
            }
        });
    }
}

/// What one plugin may publish, and what it is handed.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerGrant {
    /// Topics it may publish on through the `broker` import.
    pub publish: Arc<[String]>,
    /// Topics whose messages it is handed (a component of the `subscriber` world).
    pub subscribe: Arc<[String]>,
}

/// Per-instance state of the `broker` import.
pub struct BrokerState {
    plugin: Arc<str>,
    topics: Arc<[String]>,
    broker: Broker,
}

impl Capability for Broker {
    const NAME: &'static str = "broker";
    const GRANT_KEYS: &'static [&'static str] = &["publish", "subscribe"];
    type Config = BrokerConfig;
    type Grant = BrokerGrant;
    type State = BrokerState;

    fn problems(config: &BrokerConfig) -> Vec<String> {
        config.problems()
    }

    async fn init(config: &BrokerConfig, shared: &mut Shared<'_>) -> Result<Self, InitError> {
        let stats = BrokerStats::register(shared.metrics);
        let (deliveries, received) = mpsc::channel(config.queue_capacity);
        let (backend_name, backend): (_, Arc<dyn Backend>) = match config.backend {
            BrokerBackend::Memory => (
                "memory",
                Arc::new(memory::InProcess {
                    subscriptions: Default::default(),
                    deliveries,
                    stats: stats.clone(),
                }),
            ),
            BrokerBackend::Nats => {
                let nats = nats::Nats::start(config, deliveries, stats.clone())
                    .await
                    .map_err(|e| InitError::new("broker", e))?;
                ("nats", Arc::new(nats))
            }
        };
        let (outgoing, mut queue) = mpsc::channel::<(String, Bytes)>(config.queue_capacity);
        let sender = backend.clone();
        tokio::spawn(async move {
            while let Some((topic, payload)) = queue.recv().await {
                sender.send(&topic, payload).await;
            }
        });
        Ok(Self(Arc::new(Hub {
            backend_name,
            config: config.clone(),
            outgoing,
            backend,
            stats,
            max_in_flight: config.max_in_flight,
            deliveries: Mutex::new(Some(received)),
        })))
    }

    fn link<T: StateOf<BrokerState>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        use crate::bindings::micro_api::host::broker;
        broker::add_to_linker::<T, HasSelf<BrokerState>>(linker, T::state)
    }

    fn configure(_: &BrokerConfig, plugin: &PluginSpec<'_>) -> Result<BrokerGrant, Vec<String>> {
        let grant: BrokerGrant = plugin.grant(Self::GRANT_KEYS)?;
        let mut problems: Vec<String> = grant
            .publish
            .iter()
            .chain(grant.subscribe.iter())
            .filter(|topic| !valid_topic(topic))
            .map(|topic| {
                format!(
                    "[plugin.{}] {topic:?} is not a topic: dot-separated words of letters, digits, - and _",
                    plugin.name
                )
            })
            .collect();
        let fix = "list the topics it may publish on: `publish = [\"user.login\"]`";
        if let Err(refused) =
            plugin.require("micro-api:host/broker", !grant.publish.is_empty(), fix)
        {
            problems.extend(refused);
        }
        // A subscriber exports rather than imports its capability, so it is refused in
        // words of its own rather than as an ungranted import.
        if plugin.world == Some(World::Subscriber) && grant.subscribe.is_empty() {
            problems.push(format!(
                "exports micro-api:host/message-handler (subscriber world), but [plugin.{}] subscribes to no topic: list the topics it is handed: `subscribe = [\"user.login\"]`",
                plugin.name
            ));
        }
        if problems.is_empty() {
            Ok(grant)
        } else {
            Err(problems)
        }
    }

    fn prepare(&self, grant: &BrokerGrant, invocation: &Invocation<'_>) -> BrokerState {
        BrokerState {
            plugin: invocation.plugin.clone(),
            topics: grant.publish.clone(),
            broker: self.clone(),
        }
    }
}
