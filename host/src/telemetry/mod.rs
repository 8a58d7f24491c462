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
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

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
    /// The innermost of them, shared with [`InCurrentSpan`] so host calls nest in it.
    innermost: Arc<Mutex<Option<tracing::Span>>>,
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
            innermost: Arc::default(),
            next_span: 1,
            _in_use: metrics::InstanceInUse::count(),
        }
    }

    /// Where the instance runs: in the plugin's innermost open span, else in the
    /// invocation's, so the spans of host calls nest where the plugin made them.
    pub fn current_span(&self) -> CurrentSpan {
        CurrentSpan {
            invocation: self.invocation.clone(),
            innermost: self.innermost.clone(),
        }
    }

    fn set_innermost(&self) {
        *self
            .innermost
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            self.spans.last_key_value().map(|(_, span)| span.clone());
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

/// The span an instance runs in; see [`TelemetryState::current_span`].
pub struct CurrentSpan {
    invocation: tracing::Span,
    innermost: Arc<Mutex<Option<tracing::Span>>>,
}

impl CurrentSpan {
    /// `future`, entered in the current span at each poll.
    pub fn wrap<F: Future>(self, future: F) -> InCurrentSpan<F> {
        InCurrentSpan {
            span: self,
            future: Box::pin(future),
        }
    }
}

/// A future run in a [`CurrentSpan`].
pub struct InCurrentSpan<F> {
    span: CurrentSpan,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for InCurrentSpan<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let innermost = this
            .span
            .innermost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let _entered = innermost.as_ref().unwrap_or(&this.span.invocation).enter();
        this.future.as_mut().poll(cx)
    }
}
