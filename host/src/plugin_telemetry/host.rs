//! The WIT glue of the `log` and `trace` imports (and the type-only `types` interface).

use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::TelemetryState;
use crate::bindings::micro_api::host::log::{self, Level};
use crate::bindings::micro_api::host::{trace, types};
use crate::telemetry::exporting;

impl types::Host for &mut TelemetryState {}

impl log::Host for &mut TelemetryState {
    async fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let fields = serde_json::Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        );
        let plugin = &*self.plugin;
        let _entered = self.invocation.enter();
        // `tracing` levels are static: one macro call per level.
        match level {
            Level::Trace => tracing::trace!(target: "plugin", plugin, %fields, "{message}"),
            Level::Debug => tracing::debug!(target: "plugin", plugin, %fields, "{message}"),
            Level::Info => tracing::info!(target: "plugin", plugin, %fields, "{message}"),
            Level::Warn => tracing::warn!(target: "plugin", plugin, %fields, "{message}"),
            Level::Error => tracing::error!(target: "plugin", plugin, %fields, "{message}"),
        }
    }
}

impl trace::Host for &mut TelemetryState {
    async fn enter_span(&mut self, name: String) -> u64 {
        // Nested where it was opened: in the innermost span still open, else the invocation.
        let parent = self
            .spans
            .last_key_value()
            .map_or(&self.invocation, |(_, span)| span);
        let span = tracing::info_span!(parent: parent, "plugin.span", otel.name = %name, plugin = %self.plugin);
        let id = self.next_span;
        self.next_span += 1;
        self.spans.insert(id, span);
        self.set_innermost();
        // The instance runs in the span it had when this poll began: yield so that the
        // next poll, and the host calls made in it, run in this one.
        tokio::task::yield_now().await;
        id
    }

    async fn set_attribute(&mut self, span: u64, key: String, value: String) {
        if let Some(span) = self.spans.get(&span) {
            span.in_scope(|| tracing::debug!(target: "plugin", %key, %value, "span attribute"));
            if exporting() {
                span.set_attribute(key, value);
            }
        }
    }

    async fn exit_span(&mut self, span: u64) {
        // Spans opened after this one are nested in it: close them too.
        self.spans.retain(|id, _| *id < span);
        self.set_innermost();
        tokio::task::yield_now().await;
    }
}
