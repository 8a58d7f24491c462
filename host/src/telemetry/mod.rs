//! The host's logs, spans and metrics: `tracing` with JSON lines on stdout and in rotating
//! files, spans exported over OTLP, the W3C trace context carried across every hop, and the
//! metrics registry's vocabulary. Below every other module: it imports none of them (the
//! plugins' own `log` and `trace` imports are the `plugin_telemetry` capability).

mod config;
mod json_lines;
pub mod metrics;
mod setup;
mod trace_context;

pub use config::{ACCESS_LOG_TARGET, AccessLog, TelemetryConfig};
pub use setup::{TelemetryError, TelemetryGuard, exporting, init};
pub use trace_context::TraceContext;
