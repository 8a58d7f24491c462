//! The process-wide subscriber, built once at start from `[telemetry]`: JSON lines on stdout
//! and, with `log_dir`, in rotating files; with `otlp_endpoint`, spans exported over
//! OTLP/HTTP (protobuf). Without an endpoint the OpenTelemetry layer is not installed at
//! all, so a request pays nothing for it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use super::json_lines::{JsonLines, NoSpanFields, SpanTags};
use super::{ACCESS_LOG_TARGET, AccessLog, TelemetryConfig};

/// Whether spans are exported: set once by [`init`]. Read on the request path to skip the
/// work only an exported span needs.
static EXPORTING: AtomicBool = AtomicBool::new(false);

pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The installed subscriber, for [`otel_ids`]: a log line is formatted inside a dispatch,
/// where `tracing` hands out no current one.
static DISPATCH: OnceLock<tracing::Dispatch> = OnceLock::new();

/// The OpenTelemetry (trace id, span id) of span `id`, when spans are exported. The caller
/// must hold none of the span's extensions.
pub(super) fn otel_ids(id: &tracing::span::Id) -> Option<(String, String)> {
    if !exporting() {
        return None;
    }
    let context = tracing_opentelemetry::get_otel_context(id, DISPATCH.get()?)?;
    let span = context.span();
    let ids = span.span_context();
    ids.is_valid()
        .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("[telemetry] log_dir {path}: {source}")]
    LogDir {
        path: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("[telemetry] otlp_endpoint {endpoint}: {source}")]
    Exporter {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// Keeps the exporter and the log file writer alive; dropping it flushes both.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    _file: Option<tracing_appender::non_blocking::WorkerGuard>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("micro-api: flushing spans at exit failed: {e}");
        }
    }
}

/// Targets whose debug lines print guest I/O (request and response bodies, so passwords
/// and tokens): held at info whatever the filter says.
const GUEST_IO_TARGETS: &[&str] = &["wasmtime_wasi", "wasmtime_wasi_http"];

/// The log level's filter; with the access log on, its lines pass whatever the level.
fn log_filter(config: &TelemetryConfig) -> EnvFilter {
    let mut filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let mut directives: Vec<String> = GUEST_IO_TARGETS
        .iter()
        .map(|target| format!("{target}=info"))
        .collect();
    if config.access_log == AccessLog::Json {
        directives.push(format!("{}=info", ACCESS_LOG_TARGET));
    }
    for directive in directives {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Installs the global subscriber. `node_id` names this node in exported spans.
pub fn init(config: &TelemetryConfig, node_id: &str) -> Result<TelemetryGuard, TelemetryError> {
    let stdout = fmt::layer()
        .event_format(JsonLines)
        .fmt_fields(NoSpanFields)
        .with_writer(std::io::stdout)
        .with_filter(log_filter(config));
    let (file, file_guard) = if config.log_dir.as_os_str().is_empty() {
        (None, None)
    } else {
        let log_dir_error = |source| TelemetryError::LogDir {
            path: config.log_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&config.log_dir).map_err(|e| log_dir_error(e.into()))?;
        let appender = tracing_appender::rolling::Builder::new()
            .rotation(rotation(&config.log_rotation))
            .filename_prefix("micro-api")
            .filename_suffix("log")
            .max_log_files(config.log_files_kept.max(1))
            .build(&config.log_dir)
            .map_err(|e| log_dir_error(e.into()))?;
        let (writer, guard) = tracing_appender::non_blocking(appender);
        let layer = fmt::layer()
            .event_format(JsonLines)
            .fmt_fields(NoSpanFields)
            .with_writer(writer)
            .with_filter(log_filter(config));
        (Some(layer), Some(guard))
    };
    let (otel, provider) = if config.otlp_endpoint.is_empty() {
        (None, None)
    } else {
        let provider = tracer_provider(config, node_id)?;
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("micro-api"))
            // The host's own spans (every span of a request is one), never its
            // dependencies' internals.
            .with_filter(Targets::new().with_target("micro_api", tracing::Level::INFO));
        EXPORTING.store(true, Ordering::Relaxed);
        (Some(layer), Some(provider))
    };
    let dispatch: tracing::Dispatch = tracing_subscriber::registry()
        // Only the spans a log line may name: the others cost nothing when logs skip them.
        .with(SpanTags.with_filter(log_filter(config)))
        .with(otel)
        .with(stdout)
        .with(file)
        .into();
    // Also takes the `log` crate's records (sqlx's, for one) into the same lines.
    if dispatch.clone().try_init().is_ok() {
        let _ = DISPATCH.set(dispatch);
    }
    Ok(TelemetryGuard {
        provider,
        _file: file_guard,
    })
}

fn rotation(name: &str) -> tracing_appender::rolling::Rotation {
    use tracing_appender::rolling::Rotation;
    match name {
        "minutely" => Rotation::MINUTELY,
        "hourly" => Rotation::HOURLY,
        "never" => Rotation::NEVER,
        _ => Rotation::DAILY,
    }
}

/// The OTLP/HTTP exporter behind a batch processor (its own thread: a slow collector never
/// holds a request), sampling new traces at `sampling_ratio` and following a caller's flag.
fn tracer_provider(
    config: &TelemetryConfig,
    node_id: &str,
) -> Result<SdkTracerProvider, TelemetryError> {
    let base = config.otlp_endpoint.trim_end_matches('/');
    let endpoint = if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(&endpoint)
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|source| TelemetryError::Exporter {
            endpoint: crate::settings::redact_url(&endpoint),
            source,
        })?;
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(KeyValue::new("service.instance.id", node_id.to_string()))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sampling_ratio,
        ))))
        .with_resource(resource)
        .build())
}
