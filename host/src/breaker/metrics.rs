//! The breakers' series in `/metrics`: each command's state and its transitions.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::State;
use crate::telemetry::metrics::register;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabel {
    command: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    command: String,
    /// The state entered: `closed`, `open` or `half_open`.
    to: &'static str,
}

/// Registered once; every breaker counts into it.
#[derive(Default)]
pub struct BreakerMetrics {
    state: Family<CommandLabel, Gauge>,
    transitions: Family<TransitionLabels, Counter>,
}

impl BreakerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        register! { registry,
            "breaker_state", "Circuit breaker state per command: 0 closed, 1 open, 2 half-open", metrics.state;
            "breaker_transitions", "Circuit breaker state changes, by command and state entered", metrics.transitions;
        }
        metrics
    }

    /// A new breaker starts closed.
    pub(super) fn created(&self, command: &str) {
        self.state
            .get_or_create(&CommandLabel {
                command: command.to_string(),
            })
            .set(0);
    }

    pub(super) fn entered(&self, command: &str, state: State) {
        let (value, to) = match state {
            State::Closed => (0, "closed"),
            State::Open => (1, "open"),
            State::HalfOpen => (2, "half_open"),
        };
        let command = command.to_string();
        self.state
            .get_or_create(&CommandLabel {
                command: command.clone(),
            })
            .set(value);
        self.transitions
            .get_or_create(&TransitionLabels { command, to })
            .inc();
    }
}
