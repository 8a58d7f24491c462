//! The broker's counts: in `/metrics` (`micro_api_broker_messages_total{outcome}`) and,
//! read from the same series, under `GET /admin/broker`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    /// `published`, `dropped`, `delivered` or `failed`.
    outcome: &'static str,
}

/// What happened to messages.
#[derive(Clone, Default)]
pub struct BrokerStats {
    messages: Family<OutcomeLabel, Counter>,
}

/// What a message can come to.
#[derive(Debug, Clone, Copy)]
pub enum Fate {
    /// Accepted by `publish`.
    Published,
    /// Dropped: the outgoing or the delivery queue was full, or its subscriber is gone.
    Dropped,
    /// Handled by a subscriber plugin.
    Delivered,
    /// Its subscriber failed, trapped or timed out (not redelivered).
    Failed,
}

impl Fate {
    const ALL: [Fate; 4] = [
        Fate::Published,
        Fate::Dropped,
        Fate::Delivered,
        Fate::Failed,
    ];

    fn name(self) -> &'static str {
        match self {
            Fate::Published => "published",
            Fate::Dropped => "dropped",
            Fate::Delivered => "delivered",
            Fate::Failed => "failed",
        }
    }
}

impl BrokerStats {
    pub fn register(registry: &mut Registry) -> Self {
        let stats = Self::default();
        registry.register(
            "broker_messages",
            "Broker messages by what became of them",
            stats.messages.clone(),
        );
        stats
    }

    pub fn count(&self, fate: Fate) {
        self.messages
            .get_or_create(&OutcomeLabel {
                outcome: fate.name(),
            })
            .inc();
    }

    /// `{"published": n, ...}` for the admin API.
    pub fn snapshot(&self) -> serde_json::Value {
        let counts = Fate::ALL.map(|fate| {
            let count = self
                .messages
                .get_or_create(&OutcomeLabel {
                    outcome: fate.name(),
                })
                .get();
            (fate.name().to_string(), serde_json::Value::from(count))
        });
        serde_json::Value::Object(counts.into_iter().collect())
    }
}
