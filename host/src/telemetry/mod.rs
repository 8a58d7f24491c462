//! Logs, spans and metrics: the host's own (`tracing`, JSON lines on stdout and in rotating
//! files, spans exported over OTLP, Prometheus counters) and the plugins' (`log` and `trace`
//! imports, and their stdout/stderr), every line tagged with the plugin's name and trace.

mod guest_output;
mod host;
mod json_lines;
pub mod metrics;
mod setup;
mod trace_context;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use guest_output::{GuestOutput, Stream};
pub use setup::{TelemetryError, TelemetryGuard, exporting, init};
pub use trace_context::TraceContext;

use crate::plugins::Plugin;

/// Per-instance state of the `log` and `trace` imports.
pub struct TelemetryState {
    plugin: Arc<str>,
    version: Arc<str>,
    /// The span of this invocation: plugin spans, host calls and output nest under it.
    invocation: tracing::Span,
    /// The spans the plugin opened and has not closed, by handle (in opening order).
    spans: BTreeMap<u64, tracing::Span>,
    next_span: u64,
    _in_use: metrics::InstanceInUse,
}

impl TelemetryState {
    /// Opens the invocation's span, a child of the current one (the HTTP request, or the
    /// caller's rpc span).
    pub fn prepare(plugin: &Plugin) -> Self {
        let invocation = tracing::info_span!(
            "plugin.invoke",
            otel.name = tracing::field::Empty,
            plugin.name = %plugin.name,
            plugin.version = %plugin.version,
        );
        if exporting() {
            invocation.record("otel.name", format!("invoke {}", plugin.name));
        }
        Self {
            plugin: plugin.name.as_str().into(),
            version: plugin.version.as_str().into(),
            invocation,
            spans: BTreeMap::new(),
            next_span: 1,
            _in_use: metrics::InstanceInUse::count(),
        }
    }

    /// The invocation's span, to run the instance in.
    pub fn invocation(&self) -> &tracing::Span {
        &self.invocation
    }

    /// A sink for the guest's stdout or stderr that logs each line.
    pub fn guest_output(&self, stream: Stream) -> GuestOutput {
        GuestOutput::new(
            self.plugin.clone(),
            self.version.clone(),
            stream,
            self.invocation.clone(),
        )
    }
}
