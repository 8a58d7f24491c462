//! Prometheus metrics, served as text at `GET /metrics` on the admin listener.
//!
//! One process-wide registry (like [`crate::front::metrics`]): the request path, the
//! runtime, the breakers and the lifecycle count into it where things happen. Labels are
//! names the config or the plugins folder bounds (routes, plugins, commands), never a raw
//! path or a value a client chose, so the series stay few.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::rpc::breaker::State;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's pattern, or `unrouted`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabel {
    pub plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabel {
    pub command: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub command: String,
    /// The state entered: `closed`, `open` or `half_open`.
    pub to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub service: String,
    pub method: String,
    /// `ok`, `app_error`, `timeout`, `circuit_open`, `rejected`, `unavailable`,
    /// `forbidden` or `invalid`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SqlLabel {
    /// `query` or `execute`.
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabel {
    /// `succeeded`, `refused` or `rolled_back`.
    pub outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 0.1 ms to about 3 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

pub struct Metrics {
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_duration: Histograms<RouteLabel>,
    pub invocations: Family<PluginLabel, Counter>,
    pub errors: Family<PluginLabel, Counter>,
    pub traps: Family<PluginLabel, Counter>,
    pub deadline_kills: Family<PluginLabel, Counter>,
    pub breaker_state: Family<CommandLabel, Gauge>,
    pub breaker_transitions: Family<TransitionLabels, Counter>,
    pub rpc_calls: Family<RpcLabels, Counter>,
    pub sql_duration: Histograms<SqlLabel>,
    pub instances_in_use: Gauge,
    pub reloads: Family<ReloadLabel, Counter>,
    registry: Registry,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let m = Self {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency),
            invocations: Family::default(),
            errors: Family::default(),
            traps: Family::default(),
            deadline_kills: Family::default(),
            breaker_state: Family::default(),
            breaker_transitions: Family::default(),
            rpc_calls: Family::default(),
            sql_duration: Family::new_with_constructor(latency),
            instances_in_use: Gauge::default(),
            reloads: Family::default(),
            registry: Registry::with_prefix("micro_api"),
        };
        let mut registry = Registry::with_prefix("micro_api");
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head, by route",
            m.http_duration.clone(),
        );
        registry.register(
            "plugin_invocations",
            "Component invocations (HTTP requests and rpc calls)",
            m.invocations.clone(),
        );
        registry.register(
            "plugin_errors",
            "Invocations that failed (traps, deadlines, no response)",
            m.errors.clone(),
        );
        registry.register(
            "plugin_traps",
            "Invocations that trapped (a panic, an out-of-bounds access)",
            m.traps.clone(),
        );
        registry.register(
            "plugin_deadline_kills",
            "Invocations stopped at their deadline",
            m.deadline_kills.clone(),
        );
        registry.register(
            "breaker_state",
            "Circuit breaker state per command: 0 closed, 1 open, 2 half-open",
            m.breaker_state.clone(),
        );
        registry.register(
            "breaker_transitions",
            "Circuit breaker state changes, by command and state entered",
            m.breaker_transitions.clone(),
        );
        registry.register(
            "rpc_calls",
            "rpc calls made by components, by outcome",
            m.rpc_calls.clone(),
        );
        registry.register(
            "sql_duration_seconds",
            "Time of the sql import's statements",
            m.sql_duration.clone(),
        );
        registry.register(
            "instances_in_use",
            "Component instances alive now",
            m.instances_in_use.clone(),
        );
        registry.register(
            "plugin_reloads",
            "Plugin versions loaded, refused or rolled back",
            m.reloads.clone(),
        );
        Self { registry, ..m }
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        let route = route.to_string();
        self.http_duration
            .get_or_create(&RouteLabel {
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.http_requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    pub fn plugin(family: &Family<PluginLabel, Counter>, plugin: &str) {
        family
            .get_or_create(&PluginLabel {
                plugin: plugin.to_string(),
            })
            .inc();
    }

    /// A new breaker starts closed.
    pub fn breaker_created(&self, command: &str) {
        self.breaker_state
            .get_or_create(&CommandLabel {
                command: command.to_string(),
            })
            .set(0);
    }

    /// A breaker entered `state`.
    pub fn breaker(&self, command: &str, state: State) {
        let (value, to) = match state {
            State::Closed => (0, "closed"),
            State::Open => (1, "open"),
            State::HalfOpen => (2, "half_open"),
        };
        let command = command.to_string();
        self.breaker_state
            .get_or_create(&CommandLabel {
                command: command.clone(),
            })
            .set(value);
        self.breaker_transitions
            .get_or_create(&TransitionLabels { command, to })
            .inc();
    }

    pub fn reload(&self, outcome: &'static str) {
        self.reloads.get_or_create(&ReloadLabel { outcome }).inc();
    }
}

/// Counts an instance as in use until dropped (with the store that holds it).
pub struct InstanceInUse(());

impl InstanceInUse {
    pub fn count() -> Self {
        METRICS.instances_in_use.inc();
        Self(())
    }
}

impl Drop for InstanceInUse {
    fn drop(&mut self) {
        METRICS.instances_in_use.dec();
    }
}
