//! `[broker]`: where published messages go (in-process, or NATS), and the queues in front
//! of them.

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
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            backend: BrokerBackend::Memory,
            url: "nats://127.0.0.1:4222".into(),
            prefix: "micro-api".into(),
            queue_capacity: 1024,
            max_in_flight: 16,
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
    /// Every problem of the section, each with its fix.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.queue_capacity == 0 || self.max_in_flight == 0 {
            problems.push("[broker] queue_capacity and max_in_flight must be at least 1".into());
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
