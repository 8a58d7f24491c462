//! Observability (#6), end to end: spans received by a real OTLP/HTTP endpoint (a small
//! receiver in this test decoding the protobuf the host sends), across one and two host
//! processes; JSON log lines on stdout and in files, free of secrets at log level trace;
//! `GET /metrics` read with a Prometheus text parser; the admin page in headless Chromium;
//! and the tracing overhead, measured on purpose (`tracing_overhead_figures`).
//!
//! One module per theme; the OTLP receiver the trace and log tests share is `otlp`.

#[path = "../common/mod.rs"]
mod common;

mod admin_page;
mod logs;
mod metrics;
mod otlp;
mod overhead;
mod traces;

/// The seed's own user, logging in.
const SEED_LOGIN: &str = "userName=micro&pwd=123";
