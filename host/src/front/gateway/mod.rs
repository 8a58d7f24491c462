//! The public front door's request handler: route the request, then run it through the
//! route's steps ([`steps`]) to its plugin, in a span named after the route, counted by
//! route and status.

mod headers;
mod steps;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::Instrument;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::ClientAddr;
use super::access_log::AccessRecord;
use super::budget::AddressSlots;
use super::login_limit::{LoginLimitConfig, LoginLimiter};
use super::metrics::FrontMetrics;
use super::router::{RouteConfig, Routed, Router};
use super::shed::{ShedSettings, Shedder};
use crate::crypto::Keys;
use crate::plugins::Lifecycle;
use crate::telemetry::TraceContext;

/// What the gateway is built from.
pub struct GatewayConfig<'a> {
    pub routes: &'a [RouteConfig],
    pub login_limit: &'a LoginLimitConfig,
    /// Largest request body accepted, in bytes (`[server] body_limit`).
    pub body_limit: usize,
    /// `[front] request_timeout_ms`.
    pub request_timeout: Duration,
    /// `[front] max_requests_per_address`.
    pub max_requests_per_address: usize,
    /// `[front] shedding` and the `shed_*` keys.
    pub shedding: ShedSettings,
    /// `[telemetry] access_log = "json"`: a line per request.
    pub access_log: bool,
}

pub struct Gateway {
    routes: ArcSwap<Router>,
    lifecycle: Arc<Lifecycle>,
    keys: Arc<Keys>,
    /// Held here, not by a plugin, so the counts survive plugin reloads; shared with the
    /// rpc listener, which counts other nodes' password checks in it.
    login_limit: Option<Arc<LoginLimiter>>,
    body_limit: usize,
    request_timeout: Duration,
    /// Requests in flight per client address.
    in_flight: Arc<AddressSlots>,
    shedder: Shedder,
    metrics: Arc<FrontMetrics>,
    access_log: bool,
}

impl Gateway {
    pub fn new(
        config: GatewayConfig<'_>,
        lifecycle: Arc<Lifecycle>,
        keys: Arc<Keys>,
        metrics: Arc<FrontMetrics>,
    ) -> Self {
        Self {
            routes: ArcSwap::from_pointee(Router::new(config.routes)),
            lifecycle,
            keys,
            login_limit: LoginLimiter::new(config.login_limit).map(Arc::new),
            body_limit: config.body_limit,
            request_timeout: config.request_timeout,
            in_flight: AddressSlots::new(config.max_requests_per_address),
            shedder: Shedder::new(config.shedding),
            metrics,
            access_log: config.access_log,
        }
    }

    /// Serves `routes` from the next request on.
    pub fn set_routes(&self, routes: &[RouteConfig]) {
        self.routes.store(Arc::new(Router::new(routes)));
    }

    /// The routes in force now.
    pub fn routes(&self) -> Arc<Router> {
        self.routes.load_full()
    }

    pub fn login_limiter(&self) -> Option<&Arc<LoginLimiter>> {
        self.login_limit.as_ref()
    }

    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Response<HyperOutgoingBody> {
        let started = std::time::Instant::now();
        // Routed first: the span is named after the route, which an exported span cannot
        // change once started. The routes in force now: a config change swaps them between
        // two requests.
        let router = self.routes.load_full();
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
        let trace_id = trace.trace_id_hex();
        span.record("trace_id", &trace_id);
        let mut access = self.access_log.then(|| {
            let client = request.extensions().get::<ClientAddr>().map(|c| c.0);
            let path = request.uri().path();
            AccessRecord::new(started, client, request.method(), route, path, trace_id)
        });
        let response = self
            .pass(request, routed, trace, access.as_mut())
            .instrument(span.clone())
            .await
            .unwrap_or_else(|refusal| *refusal);
        let status = response.status().as_u16();
        span.record("http.response.status_code", status);
        let elapsed = started.elapsed();
        span.in_scope(|| {
            tracing::debug!(status, elapsed_us = elapsed.as_micros() as u64, "answered")
        });
        self.metrics
            .request(route.unwrap_or("unrouted"), status, elapsed);
        let Some(access) = access else {
            return response;
        };
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        response.map(|body| access.around(status, declared, body).boxed_unsync())
    }
}
