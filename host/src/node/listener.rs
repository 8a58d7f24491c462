//! The internal rpc listener: other nodes call the services of this one here. Every
//! request must carry the cluster secret (with `[cluster.tls]`, over a connection whose
//! client certificate the CA signed); one without it gets 401 and never reaches a
//! component. A caller calls only what `[cluster] allow` lets it (403 otherwise), and a
//! password check is counted by the login limiter (429 past it). The caller's remaining
//! deadline becomes the callee's, so the work stops when the caller has given up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio_rustls::TlsAcceptor;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::Dispatch;
use super::allow::Permissions;
use super::login_checks::{self, LoginChecks};
use super::remote::{DEADLINE_HEADER, DEPTH_HEADER};
use crate::capability::CallContext;
use crate::front::{ClientAddr, FrontMetrics, TlsPeer, error};
use crate::plugins::Lifecycle;
use crate::rpc::Error;
use crate::settings::SecretDigest;
use crate::telemetry::TraceContext;
use tracing::Instrument;

fn header<'a>(request: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// What the listener checks and runs calls with.
pub struct RpcListener {
    pub lifecycle: Arc<Lifecycle>,
    /// `[cluster] secret`'s digest; `None` (no secret) refuses every call.
    pub secret: Option<SecretDigest>,
    /// `[server] body_limit`.
    pub body_limit: usize,
    /// With `[cluster.tls]`: the listener takes TLS connections with a client certificate
    /// signed by the CA, and nothing else.
    pub tls: Option<TlsAcceptor>,
    /// `[cluster] allow`.
    pub permissions: Permissions,
    /// `[cluster] login_checks`, counted in the host's login limiter.
    pub login_checks: LoginChecks,
    /// Where its refusals are counted (and logged at most once a second per kind).
    pub metrics: Arc<FrontMetrics>,
}

pub async fn handle(
    listener: Arc<RpcListener>,
    request: Request<Incoming>,
) -> Response<HyperOutgoingBody> {
    let presented = header(&request, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let known = listener.secret.as_ref();
    if !known.is_some_and(|secret| secret.matches(presented.as_bytes())) {
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
    let cert = request.extensions().get::<TlsPeer>().map(|peer| &*peer.0);
    let (allowed, caller) = listener.permissions.check(cert, &service, &method);
    if !allowed {
        if let Some(total) = listener.metrics.rpc_forbidden.hit() {
            let peer = request
                .extensions()
                .get::<ClientAddr>()
                .map(|a| a.0.to_string());
            let peer = peer.unwrap_or_default();
            tracing::warn!(%caller, %peer, %service, %method, total, "403: rpc call not in [cluster] allow");
        }
        let refusal = Error::Forbidden(format!("{caller} may not call {service}.{method}"));
        return answer_error(StatusCode::FORBIDDEN, &refusal);
    }
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
        Err(_) => {
            let refusal = Error::Invalid("payload too large or cut".into());
            return answer_error(StatusCode::PAYLOAD_TOO_LARGE, &refusal);
        }
    };
    // Held until the answer: a check in progress holds its place in its name's count.
    let attempt = match listener.login_checks.begin(&service, &method, &payload) {
        Ok(attempt) => attempt,
        Err((status, refusal)) => {
            if status == StatusCode::TOO_MANY_REQUESTS
                && let Some(total) = listener.metrics.logins_throttled.hit()
            {
                tracing::warn!(%caller, %service, %method, total, "429: too many failed password checks from other nodes");
            }
            return answer_error(status, &refusal);
        }
    };
    let lifecycle = &listener.lifecycle;
    let result = tokio::time::timeout_at(
        call.deadline.into(),
        Dispatch::call_local(lifecycle, &service, &method, payload, call),
    )
    .instrument(span)
    .await
    .unwrap_or(Err(Error::Timeout));
    if let Some(attempt) = attempt {
        attempt.finish(login_checks::outcome(&result));
    }
    match result {
        Ok(bytes) => Response::new(error::full(bytes)),
        Err(e) => answer_error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// An rpc error as the caller's [`super::remote`] reads it back: its JSON, with `status`.
fn answer_error(status: StatusCode, e: &Error) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(error::full(
        serde_json::to_vec(e).expect("call errors serialize"),
    ));
    *response.status_mut() = status;
    response
}
