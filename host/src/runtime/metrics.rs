//! The runtime's series: invocations and how they failed, per plugin, and instances alive.
//! The admin API's per-plugin counts read these same series.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::telemetry::metrics::{PluginLabel, register};

#[derive(Clone, Default)]
pub struct InvocationMetrics {
    invocations: Family<PluginLabel, Counter>,
    errors: Family<PluginLabel, Counter>,
    traps: Family<PluginLabel, Counter>,
    deadline_kills: Family<PluginLabel, Counter>,
    no_responses: Family<PluginLabel, Counter>,
    alive: Gauge,
    reused_alive: Family<PluginLabel, Gauge>,
    reused_idle: Family<PluginLabel, Gauge>,
    reuses: Family<PluginLabel, Counter>,
}

/// One kind of event of an invocation.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// An invocation started (an HTTP request, an rpc call, a message).
    Invoked,
    /// It failed: a trap, a deadline, no response, an error code or a refusal.
    Failed,
    /// It trapped (a panic, an out-of-bounds access).
    Trapped,
    /// It was stopped at its deadline.
    Killed,
    /// An HTTP guest ended without setting its response, and without a trap.
    NoResponse,
}

/// One plugin's counts, for the admin API.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PluginCounts {
    pub invocations: u64,
    pub errors: u64,
    pub traps: u64,
    pub deadline_kills: u64,
    pub no_responses: u64,
}

/// One plugin's reused instances now, for the admin API.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct InstanceCounts {
    pub alive: i64,
    pub idle: i64,
    pub reuses: u64,
}

impl InvocationMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        register! { registry,
            "plugin_invocations", "Component invocations (HTTP requests and rpc calls)", m.invocations;
            "plugin_errors", "Invocations that failed (traps, deadlines, no response)", m.errors;
            "plugin_traps", "Invocations that trapped (a panic, an out-of-bounds access)", m.traps;
            "plugin_deadline_kills", "Invocations stopped at their deadline", m.deadline_kills;
            "plugin_no_responses", "HTTP invocations that ended without setting a response, without a trap", m.no_responses;
            "instances_in_use", "Component instances alive now", m.alive;
            "instances_reused_alive", "Reused component instances alive now, per plugin", m.reused_alive;
            "instances_reused_idle", "Reused component instances alive and waiting for a request, per plugin", m.reused_idle;
            "instance_reuses", "Requests served by an instance that had served one before, per plugin", m.reuses;
        }
        m
    }

    /// The counters of `plugin`, made once per loaded version: counting is then one atomic
    /// add, with no label to build on the request path.
    pub fn for_plugin(&self, plugin: &str) -> PluginCounters {
        let label = PluginLabel {
            plugin: plugin.to_string(),
        };
        PluginCounters {
            invocations: self.invocations.get_or_create(&label).clone(),
            errors: self.errors.get_or_create(&label).clone(),
            traps: self.traps.get_or_create(&label).clone(),
            deadline_kills: self.deadline_kills.get_or_create(&label).clone(),
            no_responses: self.no_responses.get_or_create(&label).clone(),
            reused_alive: self.reused_alive.get_or_create(&label).clone(),
            reused_idle: self.reused_idle.get_or_create(&label).clone(),
            reuses: self.reuses.get_or_create(&label).clone(),
        }
    }

    pub(super) fn alive(&self) -> InstanceAlive {
        self.alive.inc();
        InstanceAlive(self.alive.clone())
    }
}

/// One plugin's series.
#[derive(Clone)]
pub struct PluginCounters {
    invocations: Counter,
    errors: Counter,
    traps: Counter,
    deadline_kills: Counter,
    no_responses: Counter,
    pub(super) reused_alive: Gauge,
    pub(super) reused_idle: Gauge,
    pub(super) reuses: Counter,
}

impl PluginCounters {
    pub fn count(&self, event: Event) {
        match event {
            Event::Invoked => &self.invocations,
            Event::Failed => &self.errors,
            Event::Trapped => &self.traps,
            Event::Killed => &self.deadline_kills,
            Event::NoResponse => &self.no_responses,
        }
        .inc();
    }

    pub fn counts(&self) -> PluginCounts {
        PluginCounts {
            invocations: self.invocations.get(),
            errors: self.errors.get(),
            traps: self.traps.get(),
            deadline_kills: self.deadline_kills.get(),
            no_responses: self.no_responses.get(),
        }
    }

    pub fn instances(&self) -> InstanceCounts {
        InstanceCounts {
            alive: self.reused_alive.get(),
            idle: self.reused_idle.get(),
            reuses: self.reuses.get(),
        }
    }
}

/// Counts an instance as alive until dropped (with the store that holds it).
pub struct InstanceAlive(Gauge);

impl Drop for InstanceAlive {
    fn drop(&mut self) {
        self.0.dec();
    }
}
