//! `[broker]`: where published messages go (in-process, or NATS), and the queues in front
//! of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BrokerBackend {
    /// Messages stay in this process.
    Memory,
    /// Core NATS: messages cross hosts, at most once.
    Nats,
}

/// `[broker]`: the publish/subscribe capability's backend and queues.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    pub backend: BrokerBackend,
    /// The NATS server, such as `nats://127.0.0.1:4222`.
    pub url: String,
    /// Subjects are `<prefix>.<topic>`, queue groups `<prefix>.<plugin>`.
    pub prefix: String,
    /// Messages waiting to be sent, and deliveries waiting for a subscriber; past it a
    /// message is dropped and counted (publishing never waits).
    pub queue_capacity: usize,
    /// Subscriber invocations running at once.
    pub max_in_flight: usize,
    /// Largest payload `publish` accepts, in bytes; larger: `invalid` (a queue of
    /// `queue_capacity` messages holds at most that many times this).
    pub max_message_bytes: usize,
    /// `[broker.topic."<topic>"]`: a topic's own `max_message_bytes`.
    pub topic: BTreeMap<String, TopicLimits>,
}

/// The limits of one topic.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopicLimits {
    pub max_message_bytes: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            backend: BrokerBackend::Memory,
            url: "nats://127.0.0.1:4222".into(),
            prefix: "micro-api".into(),
            queue_capacity: 1024,
            max_in_flight: 16,
            max_message_bytes: 64 * 1024,
            topic: BTreeMap::new(),
        }
    }
}

/// A topic: dot-separated words of letters, digits, `-` and `_` (a NATS subject without
/// wildcards).
pub fn valid_topic(topic: &str) -> bool {
    topic.split('.').all(|word| {
        !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

impl BrokerConfig {
    /// The largest payload accepted on `topic`.
    pub fn max_message_bytes_of(&self, topic: &str) -> usize {
        self.topic
            .get(topic)
            .map_or(self.max_message_bytes, |t| t.max_message_bytes)
    }

    /// Every problem of the section, each with its fix.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.queue_capacity == 0 || self.max_in_flight == 0 {
            problems.push("[broker] queue_capacity and max_in_flight must be at least 1".into());
        }
        if self.max_message_bytes == 0 {
            problems.push("[broker] max_message_bytes must be at least 1".into());
        }
        for (topic, limits) in &self.topic {
            if !valid_topic(topic) {
                problems.push(format!(
                    "[broker.topic.{topic:?}] is not a topic: dot-separated words of letters, digits, - and _"
                ));
            }
            if limits.max_message_bytes == 0 {
                problems.push(format!(
                    "[broker.topic.{topic:?}] max_message_bytes must be at least 1"
                ));
            }
        }
        if self.backend == BrokerBackend::Nats && !valid_topic(&self.prefix) {
            problems.push(format!(
                "[broker] prefix {:?} must be dot-separated words (a NATS subject prefix)",
                self.prefix
            ));
        }
        problems
    }
}
