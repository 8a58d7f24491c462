//! The plugins' own telemetry as a capability: the `log` and `trace` imports (granted to
//! every plugin) and their stdout/stderr, all under the span of the invocation, which its
//! logs, its own spans and its host calls nest in. The host's own telemetry (the
//! subscriber, metrics, trace context) is `crate::telemetry`, below every capability.

mod guest_output;
mod host;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use wasmtime::component::{HasSelf, Linker};

pub use guest_output::{GuestOutput, Stream};

use crate::capability::{Capability, InitError, Invocation, PluginSpec, Shared, StateOf};
use crate::telemetry::{TelemetryConfig, exporting};

/// The capability: it holds nothing; the subscriber is process-wide (`init`).
pub struct Telemetry;

impl Capability for Telemetry {
    const NAME: &'static str = "telemetry";
    const GRANT_KEYS: &'static [&'static str] = &[];
    type Config = TelemetryConfig;
    type Grant = ();
    type State = TelemetryState;

    fn problems(config: &TelemetryConfig) -> Vec<String> {
        config.problems()
    }

    async fn init(_config: &TelemetryConfig, _shared: &mut Shared<'_>) -> Result<Self, InitError> {
        Ok(Self)
    }

    fn link<T: StateOf<TelemetryState>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        use crate::bindings::micro_api::host as wit;
        wit::types::add_to_linker::<T, HasSelf<TelemetryState>>(linker, T::state)?;
        wit::log::add_to_linker::<T, HasSelf<TelemetryState>>(linker, T::state)?;
        wit::trace::add_to_linker::<T, HasSelf<TelemetryState>>(linker, T::state)
    }

    fn configure(_: &TelemetryConfig, _: &PluginSpec<'_>) -> Result<(), Vec<String>> {
        Ok(())
    }

    fn prepare(&self, _grant: &(), invocation: &Invocation<'_>) -> TelemetryState {
        TelemetryState::open(invocation.plugin.clone(), invocation.version.clone())
    }
}

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
}

impl TelemetryState {
    /// Opens the invocation's span, a child of the current one (the HTTP request, or the
    /// caller's rpc span).
    fn open(plugin: Arc<str>, version: Arc<str>) -> Self {
        let invocation = tracing::info_span!(
            "plugin.invoke",
            otel.name = tracing::field::Empty,
            plugin.name = %plugin,
            plugin.version = %version,
        );
        if exporting() {
            invocation.record("otel.name", format!("invoke {plugin}"));
        }
        Self {
            plugin,
            version,
            invocation,
            spans: BTreeMap::new(),
            innermost: Arc::default(),
            next_span: 1,
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
        *self.innermost.lock() = self.spans.last_key_value().map(|(_, span)| span.clone());
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
        let innermost = this.span.innermost.lock().clone();
        let _entered = innermost.as_ref().unwrap_or(&this.span.invocation).enter();
        this.future.as_mut().poll(cx)
    }
}
