//! Logs, spans and metrics: the host's own (`tracing`, JSON lines on stdout and in rotating
//! files, spans exported over OTLP, Prometheus series) and the plugins' (`log` and `trace`
//! imports, and their stdout/stderr), every line tagged with the plugin's name and trace.
//!
//! Below every other module: it imports none of them. The `log`/`trace` imports are a
//! capability of the usual shape ([`capability`]).

mod capability;
mod config;
mod guest_output;
mod host;
mod json_lines;
pub mod metrics;
mod setup;
mod trace_context;

pub use capability::{CurrentSpan, InCurrentSpan, Telemetry, TelemetryData, TelemetryState};
pub use config::TelemetryConfig;
pub use guest_output::{GuestOutput, Stream};
pub use setup::{TelemetryError, TelemetryGuard, exporting, init};
pub use trace_context::TraceContext;
