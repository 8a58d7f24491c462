//! Logs and spans: the host's own (`tracing`, JSON lines) and the plugins' (`log` and
//! `trace` imports, and their stdout/stderr), every line tagged with the plugin's name.

mod guest_output;
mod host;
mod trace_context;

use std::collections::HashMap;
use std::sync::Arc;

pub use guest_output::{GuestOutput, Stream};
pub use trace_context::TraceContext;

use crate::plugins::Plugin;

/// Installs the global subscriber: JSON lines on stdout, filtered by `filter` (overridden
/// by `RUST_LOG` when set).
pub fn init(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}

/// Per-instance state of the `log` and `trace` imports.
pub struct TelemetryState {
    plugin: Arc<str>,
    version: Arc<str>,
    /// The span of this invocation: plugin spans and output nest under it.
    invocation: tracing::Span,
    spans: HashMap<u64, tracing::Span>,
    next_span: u64,
}

impl TelemetryState {
    pub fn prepare(plugin: &Plugin) -> Self {
        Self {
            plugin: plugin.name.as_str().into(),
            version: plugin.version.as_str().into(),
            invocation: tracing::Span::current(),
            spans: HashMap::new(),
            next_span: 1,
        }
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
