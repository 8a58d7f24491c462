//! The internal rpc listener: other nodes call the services of this one here. Every
//! request must carry the cluster secret; one without it gets 401 and never reaches a
//! component. The caller's remaining deadline becomes the callee's, so the work stops when
//! the caller has given up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::Dispatch;
use super::remote::{DEADLINE_HEADER, DEPTH_HEADER};
use crate::capability::CallContext;
use crate::front::error;
use crate::plugins::Lifecycle;
use crate::rpc::Error;
use crate::telemetry::TraceContext;
use tracing::Instrument;

/// Compares secrets in time independent of where they differ. Hand-written because it is
/// four lines; pulling a crate for it would not make it clearer.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn header<'a>(request: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// What the listener checks and runs calls with.
pub struct RpcListener {
    pub lifecycle: Arc<Lifecycle>,
    /// `[cluster] secret`.
    pub secret: String,
    /// `[server] body_limit`.
    pub body_limit: usize,
}

pub async fn handle(
    listener: Arc<RpcListener>,
    request: Request<Incoming>,
) -> Response<HyperOutgoingBody> {
    let expected = listener.secret.as_str();
    let presented = header(&request, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if expected.is_empty() || !same_secret(presented.as_bytes(), expected.as_bytes()) {
        tracing::warn!(path = %request.uri().path(), "rpc call refused: no valid cluster secret");
        return error::error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "node-to-node calls need the cluster secret",
        );
    }
    let path = request.uri().path().to_string();
    let Some((service, method)) = path
        .strip_prefix("/rpc/")
        .and_then(|rest| rest.split_once('/'))
    else {
        return error::not_found();
    };
    let (service, method) = (service.to_string(), method.to_string());
    let remaining = header(&request, DEADLINE_HEADER)
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_millis);
    let depth = header(&request, DEPTH_HEADER)
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1);
    let span = tracing::info_span!(
        "rpc.server",
        otel.kind = "server",
        otel.name = tracing::field::Empty,
        rpc.system = "micro-api",
        rpc.service = %service,
        rpc.method = %method,
        trace_id = tracing::field::Empty,
    );
    if crate::telemetry::exporting() {
        span.record("otel.name", format!("{service}/{method}"));
    }
    // The caller's rpc span is the parent of this one: one trace across the nodes.
    let trace = TraceContext::accept(
        &span,
        header(&request, "traceparent").and_then(TraceContext::parse),
    );
    span.record("trace_id", trace.trace_id_hex());
    let call = CallContext {
        deadline: Instant::now() + remaining,
        depth,
        trace,
    };
    let limit = listener.body_limit;
    let payload = match Limited::new(request.into_body(), limit).collect().await {
        Ok(body) => body.to_bytes().to_vec(),
        Err(_) => return answer(Err(Error::Invalid("payload too large or cut".into()))),
    };
    let lifecycle = &listener.lifecycle;
    let result = tokio::time::timeout_at(
        call.deadline.into(),
        Dispatch::call_local(lifecycle, &service, &method, payload, call),
    )
    .instrument(span)
    .await
    .unwrap_or(Err(Error::Timeout));
    answer(result)
}

fn answer(result: Result<Vec<u8>, Error>) -> Response<HyperOutgoingBody> {
    match result {
        Ok(bytes) => {
            let mut response = Response::new(error::full(bytes));
            *response.status_mut() = StatusCode::OK;
            response
        }
        Err(e) => {
            let mut response = Response::new(error::full(
                serde_json::to_vec(&e).expect("call errors serialize"),
            ));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }
}
