//! The HTTP front on 127.0.0.1:8080: accept connections (HTTP/1.1 and HTTP/2), route each
//! request to its plugin, enforce the body limit, and turn every failure into the gateway's
//! JSON error shape.
//!
//! It is the front door, so it also holds against hostile clients: the `[front]` timeouts
//! and limits ([`conn`]), protected routes ([`auth`]), brute-force limits on the login
//! route ([`login_limit`]), each refusal counted in [`metrics`].

pub mod auth;
mod conn;
pub mod error;
pub mod login_limit;
pub mod metrics;
pub mod router;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use micro_api_contracts::headers as contracts;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::Instrument;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::app::App;
use crate::config::{FrontConfig, RouteAuth};
use crate::runtime::invoke::{self, HttpInvokeError};
use crate::telemetry::TraceContext;
use crate::telemetry::metrics::METRICS as PROMETHEUS;
use login_limit::{LoginLimiter, Subject};
use metrics::METRICS;
use router::{Params, Routed};

/// The client's address, in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The `[front]` limits [`serve`] applies; built-in defaults until [`Gateway::new`] installs
/// the config's. (Process-wide so that every listener started by `server.rs` gets them
/// without each call site passing them.)
static LIMITS: RwLock<Option<FrontConfig>> = RwLock::new(None);

/// Installs `limits` for the listeners [`serve`] starts from now on.
pub fn install_limits(limits: FrontConfig) {
    *LIMITS.write().unwrap_or_else(|e| e.into_inner()) = Some(limits);
}

fn limits() -> FrontConfig {
    LIMITS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_default()
}

/// hyper's builder with the `[front]` limits hyper enforces itself.
fn builder(limits: &FrontConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut http1 = builder.http1();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .max_buf_size(limits.max_header_bytes.max(crate::config::MIN_HEADER_BYTES));
    // hyper's own default is 100 on the stack; another count moves headers to the heap.
    if limits.max_headers != 100 {
        http1.max_headers(limits.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Serves `listener` with `handler` until `shutdown` resolves, then stops accepting and
/// waits for the connections in flight to finish their requests.
///
/// Every connection is held to the installed `[front]` limits: at most `max_connections`
/// at once (one more is answered 503), a request head within `header_read_timeout_ms`
/// (408) and of at most `max_header_bytes` / `max_headers` (431), and closed after
/// `idle_timeout_ms` without a request.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<HyperOutgoingBody>> + Send + 'static,
{
    let limits = limits();
    let builder = builder(&limits);
    let idle_timeout = Duration::from_millis(limits.idle_timeout_ms);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = conn::Refusals::new();
    let (closing, closed) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refusals.refuse(stream, peer, limits.max_connections);
            continue;
        };
        METRICS.connections_accepted.hit();
        let _ = stream.set_nodelay(true);
        let activity = conn::Activity::new();
        let handler = handler.clone();
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ClientAddr(peer));
            let busy = requests.begin();
            let response = handler(request);
            async move { Ok::<_, Infallible>(busy.until_sent(response.await)) }
        });
        let io = TokioIo::new(conn::Metered::new(stream, activity.clone()));
        let connection = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let mut closed = closed.clone();
        tokio::spawn(async move {
            let _permit = permit;
            METRICS
                .connections_open
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::pin!(connection);
            let mut stopping = false;
            let result = loop {
                tokio::select! {
                    result = connection.as_mut() => break result,
                    () = activity.idle(idle_timeout), if !stopping => {
                        METRICS.idle_closed.hit();
                        tracing::debug!(%peer, "idle connection closed");
                        connection.as_mut().graceful_shutdown();
                        stopping = true;
                    }
                    _ = closed.wait_for(|closed| *closed), if !stopping => {
                        connection.as_mut().graceful_shutdown();
                        stopping = true;
                    }
                }
            };
            if let Err(e) = result {
                conn::ended(&*e, &activity, peer);
            }
            METRICS
                .connections_open
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
    let _ = closing.send(true);
    // Each connection holds a permit until it ends: having them all back means every
    // connection has finished.
    let _ = open
        .acquire_many(u32::try_from(limits.max_connections).unwrap_or(u32::MAX))
        .await;
    Ok(())
}

/// The gateway's request handler: route, authorize, limit, invoke.
#[derive(Clone)]
pub struct Gateway {
    app: Arc<App>,
    /// Held here, not by a plugin, so the counts survive plugin reloads.
    login_limit: Option<Arc<LoginLimiter>>,
}

impl Gateway {
    /// The gateway of `app`; installs its `[front]` limits for [`serve`].
    pub fn new(app: Arc<App>) -> Self {
        install_limits(app.config.front);
        let login_limit = LoginLimiter::new(&app.config.login_limit).map(Arc::new);
        Self { app, login_limit }
    }

    pub async fn handle(self, request: Request<Incoming>) -> Response<HyperOutgoingBody> {
        let started = std::time::Instant::now();
        // Routed first: the span is named after the route, which an exported span cannot
        // change once started. The routes in force now: a config change swaps them between
        // two requests.
        let router = self.app.router.load_full();
        let routed = router.route(request.method(), request.uri().path());
        let route = match &routed {
            Routed::Route(route, _) => Some(route.path.as_str()),
            _ => None,
        };
        let span = tracing::info_span!(
            "http.request",
            otel.kind = "server",
            otel.name = tracing::field::Empty,
            http.request.method = %request.method(),
            http.route = route,
            url.path = %request.uri().path(),
            plugin = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        if crate::telemetry::exporting() {
            let name = format!("{} {}", request.method(), route.unwrap_or_default());
            span.record("otel.name", name.trim_end());
        }
        // The caller's W3C trace, or a new one; every log line of this request carries it.
        let incoming = request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(TraceContext::parse);
        let trace = TraceContext::accept(&span, incoming);
        span.record("trace_id", trace.trace_id_hex());
        let response = self
            .route(request, routed, trace)
            .instrument(span.clone())
            .await;
        let status = response.status().as_u16();
        span.record("http.response.status_code", status);
        let elapsed = started.elapsed();
        span.in_scope(|| {
            tracing::debug!(status, elapsed_us = elapsed.as_micros() as u64, "answered")
        });
        PROMETHEUS.request(route.unwrap_or("unrouted"), status, elapsed);
        response
    }

    /// Answers `request`, which the router has `routed`.
    async fn route(
        &self,
        mut request: Request<Incoming>,
        routed: Routed<'_>,
        trace: TraceContext,
    ) -> Response<HyperOutgoingBody> {
        if !has_authority(&request) {
            return error::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "a request needs one valid Host header",
            );
        }
        let (route, params) = match routed {
            Routed::Route(route, params) => (route, params),
            Routed::NotFound => return error::not_found(),
            Routed::MethodNotAllowed(allowed) => {
                let mut response = error::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "this method is not allowed on this path",
                );
                let allow = allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Ok(value) = HeaderValue::from_str(&allow) {
                    response.headers_mut().insert(header::ALLOW, value);
                }
                return response;
            }
        };
        // Before anything else, so a protected route tells nothing (not even whether its
        // plugin is loaded) to a caller without a valid token.
        let required = route.auth == RouteAuth::Required;
        if let Err(refusal) = auth::authorize(request.headers_mut(), &self.app.crypto, required) {
            if let Some(total) = METRICS.unauthorized.hit() {
                tracing::info!(path = %request.uri().path(), reason = %refusal, total, "401: protected route without a valid token");
            }
            return refusal.response();
        }
        if set_route_params(request.headers_mut(), &params).is_err() {
            return error::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the path cannot be handed to the plugin",
            );
        }
        // A route whose plugin is not loaded (yet, or any more) does not exist.
        let Some(plugin) = self.app.plugins.get(&route.plugin) else {
            return error::not_found();
        };
        tracing::Span::current().record("plugin", route.plugin.as_str());
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(self.app.config.front.request_timeout_ms);
        let request = match tokio::time::timeout_at(deadline, self.read_body(request)).await {
            Ok(Ok(request)) => request,
            Ok(Err(response)) => return response,
            Err(_elapsed) => {
                if let Some(total) = METRICS.body_timeouts.hit() {
                    tracing::warn!(
                        total,
                        "408: request body not received within request_timeout_ms"
                    );
                }
                return error::error(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body was not received in time",
                );
            }
        };
        let attempt = match self.login_attempt(&request) {
            Ok(attempt) => attempt,
            Err(throttled) => return too_many_requests(throttled),
        };
        let response =
            match tokio::time::timeout_at(deadline, self.invoke(plugin, request, trace)).await {
                Ok(response) => response,
                Err(_elapsed) => {
                    if let Some(total) = METRICS.response_timeouts.hit() {
                        tracing::warn!(total, "504: response not ready within request_timeout_ms");
                    }
                    timeout()
                }
            };
        if let Some(attempt) = attempt {
            attempt.finish(login_limit::Outcome::of(response.status()));
        }
        response
    }

    /// For the login route: lets the attempt through (to be finished with the answer), or
    /// says how long its user name or address must wait.
    fn login_attempt(
        &self,
        request: &Request<Bytes>,
    ) -> Result<Option<login_limit::Attempt<'_>>, login_limit::Throttled> {
        let Some(limiter) = self
            .login_limit
            .as_deref()
            .filter(|l| l.applies_to(request.uri().path()))
        else {
            return Ok(None);
        };
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let subject = Subject {
            user: limiter.user_name(content_type, request.body()),
            address: request
                .extensions()
                .get::<ClientAddr>()
                .map(|ClientAddr(peer)| peer.ip().into()),
        };
        limiter.begin(subject).map(Some)
    }

    /// Runs the plugin on the request; its failures in the gateway's error shape.
    async fn invoke(
        &self,
        plugin: Arc<crate::plugins::Plugin>,
        request: Request<Bytes>,
        trace: TraceContext,
    ) -> Response<HyperOutgoingBody> {
        let request = with_client_addr(request);
        match invoke::handle_http(&self.app, plugin, request.map(Full::new), trace).await {
            Ok(response) => response,
            Err(HttpInvokeError::Timeout) => timeout(),
            Err(HttpInvokeError::NotHttp(_)) => error::not_found(),
            Err(HttpInvokeError::Trap | HttpInvokeError::NoResponse) => error::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "plugin_trap",
                "the plugin failed while handling the request",
            ),
        }
    }

    /// Reads the whole body, refusing it with 413 as soon as it passes the limit (before
    /// reading it all when `Content-Length` says so).
    async fn read_body(
        &self,
        request: Request<Incoming>,
    ) -> Result<Request<Bytes>, Response<HyperOutgoingBody>> {
        let limit = self.app.config.server.body_limit;
        let too_large = || {
            error::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("the request body is larger than {limit} bytes"),
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(too_large());
        }
        let (parts, body) = request.into_parts();
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(Request::from_parts(parts, collected.to_bytes())),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            Err(_) => Err(error::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request body could not be read",
            )),
        }
    }
}

/// 429 `too_many_requests` with `Retry-After`: too many failed logins.
fn too_many_requests(throttled: login_limit::Throttled) -> Response<HyperOutgoingBody> {
    let seconds = throttled.retry_after.as_secs().max(1);
    if let Some(total) = METRICS.logins_throttled.hit() {
        tracing::warn!(retry_after = seconds, total, "429: too many failed logins");
    }
    let mut response = error::error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "too many failed logins; try again later",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// 504 `timeout`: the request's own deadline passed.
fn timeout() -> Response<HyperOutgoingBody> {
    error::error(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        "the request did not finish within its deadline",
    )
}

/// Whether the request names its authority: in its URI (HTTP/2, absolute form) or in
/// exactly one valid `Host` header. RFC 9112 asks for 400 without it, and wasi-http refuses
/// to hand such a request to a plugin: let through, it would count as the plugin's failure
/// (and could push a new version on probation into a rollback).
fn has_authority<B>(request: &Request<B>) -> bool {
    if request.uri().authority().is_some() {
        return true;
    }
    let mut hosts = request.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => host
            .to_str()
            .is_ok_and(|h| h.parse::<http::uri::Authority>().is_ok()),
        _ => false,
    }
}

/// The header in which a plugin finds its client's address (the TCP peer's IP).
pub use micro_api_contracts::headers::CLIENT_ADDR_HEADER;

/// Replaces any client-supplied [`CLIENT_ADDR_HEADER`] with the peer's address, so a plugin
/// can trust it (for an audit trail, say).
fn with_client_addr(mut request: Request<Bytes>) -> Request<Bytes> {
    let peer = request.extensions().get::<ClientAddr>().map(|c| c.0.ip());
    let headers = request.headers_mut();
    headers.remove(CLIENT_ADDR_HEADER);
    if let Some(value) = peer.and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok()) {
        headers.insert(CLIENT_ADDR_HEADER, value);
    }
    request
}

/// Replaces every client-supplied route-parameter header (`x-micro-api-param-*`) with the
/// parameters the router matched, each the raw segment of the path, so a plugin can trust
/// them. Fails only for a value that is no valid header value, which a parsed path never
/// holds.
fn set_route_params(headers: &mut HeaderMap, params: &Params<'_>) -> Result<(), http::Error> {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| contracts::is_param_header(name.as_str()))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    for (name, value) in &params.0 {
        let name = HeaderName::try_from(contracts::param_header(name))?;
        headers.append(name, HeaderValue::from_str(value)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_params_replace_every_forged_copy() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-micro-api-param-name", "forged"),
            ("X-Micro-Api-Param-Name", "forged again"),
            ("x-micro-api-param-other", "forged"),
            ("accept", "*/*"),
        ] {
            headers.append(
                HeaderName::try_from(name).unwrap(),
                HeaderValue::from_static(value),
            );
        }
        let params = Params(vec![("Name", "Jos%C3%A9".into())]);
        set_route_params(&mut headers, &params).unwrap();
        let values = |name| headers.get_all(name).iter().collect::<Vec<_>>();
        assert_eq!(values("x-micro-api-param-name"), ["Jos%C3%A9"]);
        assert!(values("x-micro-api-param-other").is_empty());
        assert_eq!(values("accept"), ["*/*"]);
        // A route without parameters still drops the forged ones.
        set_route_params(&mut headers, &Params::default()).unwrap();
        assert_eq!(headers.len(), 1);
        assert!(set_route_params(&mut headers, &Params(vec![("a", "\x7f".into())])).is_err());
    }

    #[test]
    fn a_request_must_name_its_authority() {
        let with = |uri: &str, hosts: &[&[u8]]| {
            let mut request = Request::builder().uri(uri);
            for host in hosts {
                request = request.header(header::HOST, HeaderValue::from_bytes(host).unwrap());
            }
            has_authority(&request.body(()).unwrap())
        };
        assert!(with("/a", &[b"example.com:8080"]));
        assert!(with("http://example.com/a", &[]));
        assert!(!with("/a", &[]));
        assert!(!with("/a", &[b"a", b"b"]));
        assert!(!with("/a", &[b"\xff"]));
        assert!(!with("/a", &[b"a b"]));
    }
}
