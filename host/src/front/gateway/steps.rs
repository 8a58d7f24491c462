//! The steps a routed request goes through, in order, each a small function that either
//! passes the request on or answers it: authority, address slot, route, token, plugin,
//! load shedding, body (streamed, or read whole for the login limit), invoke, settle.
//! Plain functions rather than tower layers: every step needs the route the first one
//! found, and the hot path pays nothing for boxing.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use tokio::time::Instant;
use tokio::time::error::Elapsed;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::Gateway;
use super::headers::{set_route_params, with_client_addr};
use crate::front::access_log::AccessRecord;
use crate::front::budget::AddressSlot;
use crate::front::login_limit::{self, Attempt, LoginLimiter, Subject, Throttled, Unreadable};
use crate::front::request_body::{self, BodyRefusal, BodyWatch, Guarded, Streamed};
use crate::front::router::{Params, Route, RouteAuth, Routed};
use crate::front::shed::Flight;
use crate::front::{BodyBudget, BodyBytes, ClientAddr, auth, error};
use crate::runtime::Plugin;
use crate::runtime::invoke::{self, HttpInvokeError};
use crate::telemetry::TraceContext;

/// A step's answer when the request goes no further (boxed: refusals are the rare path,
/// and a `Result` as large as a response would be copied on every step).
type Refused = Box<Response<HyperOutgoingBody>>;

impl Gateway {
    /// Runs `request`, which the router has `routed`, through every step.
    pub(super) async fn pass(
        &self,
        mut request: Request<Incoming>,
        routed: Routed<'_>,
        trace: TraceContext,
        mut access: Option<&mut AccessRecord>,
    ) -> Result<Response<HyperOutgoingBody>, Refused> {
        require_authority(&request)?;
        // Held until the response head is ready.
        let in_flight = self.admit(&request)?;
        let (route, params) = found(routed)?;
        // Before anything else, so a protected route tells nothing (not even whether its
        // plugin is loaded) to a caller without a valid token.
        self.authorize(route, &mut request)?;
        set_route_params(request.headers_mut(), &params).map_err(|_| {
            Box::new(error::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the path cannot be handed to the plugin",
            ))
        })?;
        let plugin = self.plugin_of(route)?;
        if let Some(access) = access.as_deref_mut() {
            access.plugin = Some((plugin.name.clone(), plugin.version.clone()));
        }
        // Only requests that reach a plugin: they are what the host carries.
        let _flight = self.shed(in_flight.as_ref())?;
        let deadline = Instant::now() + self.request_timeout;
        if declared_past(&request, self.body_limit) {
            return Err(self.refuse_body(BodyRefusal::TooLarge));
        }
        let login = self
            .login_limit
            .as_ref()
            .filter(|l| l.applies_to(request.uri().path()));
        let Some(limiter) = login else {
            // Streamed: the plugin reads the body as it arrives.
            let (request, watch) = self.stream_body(request);
            if let (Some(access), Some(watch)) = (access, &watch) {
                access.streamed_in = Some(watch.clone());
            }
            return Ok(self.invoke(&plugin, request, trace, deadline, watch).await);
        };
        // The limiter reads the user name from the form before the plugin runs: read whole,
        // its bytes counted against the body budgets until the response is ready.
        let (request, _body_bytes) = self.read_body(request, deadline).await?;
        if let Some(access) = access {
            access.bytes_in = request.body().len();
        }
        let attempt = self.login_attempt(limiter, &request)?;
        let request = request.map(request_body::whole);
        let response = self.invoke(&plugin, request, trace, deadline, None).await;
        if let Some(attempt) = attempt {
            attempt.finish(login_limit::Outcome::of(response.status()));
        }
        Ok(response)
    }

    /// A slot among its address's requests in flight, or 429: one client flooding the
    /// gateway is slowed down before its requests take plugin instances, breaker slots and
    /// CPU from everyone else.
    fn admit(&self, request: &Request<Incoming>) -> Result<Option<AddressSlot>, Refused> {
        let Some(ClientAddr(peer)) = request.extensions().get::<ClientAddr>() else {
            return Ok(None);
        };
        match self.in_flight.take(peer.ip()) {
            Some(slot) => Ok(Some(slot)),
            None => {
                if let Some(total) = self.metrics.address_requests_refused.hit() {
                    tracing::warn!(%peer, total, "429: requests in flight over max_requests_per_address");
                }
                Err(too_many_requests(
                    "too many requests in flight from your address; try again shortly",
                    1,
                ))
            }
        }
    }

    /// A place among the requests the host carries now, or 503 `overloaded` while it is
    /// saturated and the request's address holds more than its share.
    fn shed(&self, slot: Option<&AddressSlot>) -> Result<Flight<'_>, Refused> {
        let (held, addresses) = slot.map_or((1, 1), |slot| (slot.held, slot.addresses));
        self.shedder.admit(held, addresses).ok_or_else(|| {
            if let Some(total) = self.metrics.requests_shed.hit() {
                let cpu = self.shedder.cpu_use();
                tracing::warn!(
                    total,
                    held,
                    cpu,
                    "503: request shed, the host is overloaded"
                );
            }
            Box::new(error::unavailable(
                "overloaded",
                "the host is overloaded; try again shortly",
            ))
        })
    }

    fn authorize(&self, route: &Route, request: &mut Request<Incoming>) -> Result<(), Refused> {
        let required = route.auth == RouteAuth::Required;
        auth::authorize(request.headers_mut(), &self.keys, required).map_err(|refusal| {
            if let Some(total) = self.metrics.unauthorized.hit() {
                tracing::info!(path = %request.uri().path(), reason = %refusal, total, "401: protected route without a valid token");
            }
            Box::new(refusal.response())
        })
    }

    /// A route whose plugin is not loaded (yet, or any more) does not exist.
    fn plugin_of(&self, route: &Route) -> Result<Arc<Plugin>, Refused> {
        let plugin = self
            .lifecycle
            .get(&route.plugin)
            .ok_or_else(error::not_found)?;
        tracing::Span::current().record("plugin", route.plugin.as_str());
        Ok(plugin)
    }

    /// Reads the whole body by `deadline`, refusing it with 413 as soon as it passes the
    /// limit and with 503 when its connection or the listener has no body budget left for
    /// it. The bytes stay counted against the budgets until the returned [`BodyBytes`] is
    /// dropped.
    async fn read_body(
        &self,
        request: Request<Incoming>,
        deadline: Instant,
    ) -> Result<(Request<Bytes>, Option<BodyBytes>), Refused> {
        let (parts, body) = request.into_parts();
        let budget = parts.extensions.get::<Arc<BodyBudget>>();
        let read = tokio::time::timeout_at(
            deadline,
            request_body::collect(body, self.body_limit, budget),
        );
        match read.await {
            Ok(Ok((bytes, held))) => Ok((Request::from_parts(parts, bytes), held)),
            Ok(Err(refusal)) => Err(self.refuse_body(refusal)),
            Err(_elapsed) => Err(self.refuse_body(BodyRefusal::TooSlow)),
        }
    }

    /// The request with its body as a stream the plugin reads as it arrives, held to the
    /// body limit and budgets while it streams, and the watch that says if it failed.
    fn stream_body(
        &self,
        request: Request<Incoming>,
    ) -> (Request<WasiBody>, Option<Arc<BodyWatch>>) {
        let (parts, body) = request.into_parts();
        if body.is_end_stream() {
            // Nothing to stream (a GET, `Content-Length: 0`): no watch to keep.
            return (
                Request::from_parts(parts, request_body::whole(Bytes::new())),
                None,
            );
        }
        let budget = parts.extensions.get::<Arc<BodyBudget>>().cloned();
        let streamed = Streamed::new(body, self.body_limit, budget);
        let watch = streamed.watch();
        (
            Request::from_parts(parts, streamed.boxed_unsync()),
            Some(watch),
        )
    }

    /// The client's answer for a body that was not read whole, counted and logged.
    fn refuse_body(&self, refusal: BodyRefusal) -> Refused {
        let limit = self.body_limit;
        Box::new(match refusal {
            BodyRefusal::TooLarge => error::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("the request body is larger than {limit} bytes"),
            ),
            BodyRefusal::OverBudget => {
                if let Some(total) = self.metrics.bodies_over_budget.hit() {
                    tracing::warn!(
                        total,
                        "503: request body past its connection's or the listener's body budget"
                    );
                }
                error::unavailable(
                    "busy",
                    "too many request bodies are being received at once; try again shortly",
                )
            }
            BodyRefusal::Unreadable => error::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request body could not be read",
            ),
            BodyRefusal::TooSlow => {
                if let Some(total) = self.metrics.body_timeouts.hit() {
                    tracing::warn!(
                        total,
                        "408: request body not received within request_timeout_ms"
                    );
                }
                error::error(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body was not received in time",
                )
            }
        })
    }

    /// For the login route: lets the attempt through (to be finished with the answer), or
    /// says how long its user name or address must wait.
    fn login_attempt<'a>(
        &'a self,
        limiter: &'a LoginLimiter,
        request: &Request<Bytes>,
    ) -> Result<Option<Attempt<'a>>, Refused> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(HeaderValue::as_bytes);
        let user = limiter
            .user_name(content_type, request.body())
            .map_err(|unreadable| {
                let (status, code) = match unreadable {
                    Unreadable::ContentType => {
                        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
                    }
                    Unreadable::TooLong(_) | Unreadable::Padded => {
                        (StatusCode::BAD_REQUEST, "bad_request")
                    }
                };
                Box::new(error::error(status, code, &unreadable.to_string()))
            })?;
        let subject = Subject {
            user,
            address: request
                .extensions()
                .get::<ClientAddr>()
                .map(|ClientAddr(peer)| peer.ip().into()),
        };
        limiter
            .begin(subject)
            .map(Some)
            .map_err(|throttled| self.throttled(throttled))
    }

    /// Runs the plugin on the request by `deadline`; its failures in the gateway's error
    /// shape. The outcome goes to the lifecycle, which judges a new version by it, unless the
    /// request's streamed body failed (`watch`): then the answer is the client's refusal.
    async fn invoke(
        &self,
        plugin: &Arc<Plugin>,
        request: Request<WasiBody>,
        trace: TraceContext,
        deadline: Instant,
        watch: Option<Arc<BodyWatch>>,
    ) -> Response<HyperOutgoingBody> {
        let request = with_client_addr(request);
        let runtime = self.lifecycle.runtime();
        let invoked = tokio::time::timeout_at(
            deadline,
            invoke::handle_http(runtime, plugin, request, trace),
        )
        .await;
        let Some(watch) = watch else {
            return self.settle(plugin, invoked);
        };
        let out_of_time = matches!(invoked, Err(_) | Ok(Err(HttpInvokeError::Timeout)));
        if let Some(refusal) = watch.refusal(out_of_time) {
            watch.cut(refusal);
            return *self.refuse_body(refusal);
        }
        let answered = self.settle(plugin, invoked);
        if watch.settled() {
            return answered;
        }
        // Answered before the body ended: the body may still fail, and the answer with it.
        answered.map(|body| Guarded::new(body, watch).boxed_unsync())
    }

    /// The plugin's answer, or its failure in the gateway's error shape; judged for the
    /// version's probation.
    fn settle(
        &self,
        plugin: &Plugin,
        invoked: Result<Result<Response<HyperOutgoingBody>, HttpInvokeError>, Elapsed>,
    ) -> Response<HyperOutgoingBody> {
        // Whether the plugin itself failed, for its probation: a trap, a deadline kill, or
        // a 500 of its own. A 502, 503 or 504 it answers passes on a dependency's state
        // (an open breaker a client may have tripped on purpose), and a full pool is the
        // host's: none of them may roll a fresh deploy back.
        let (response, own_failure) = match invoked {
            Ok(Ok(response)) => {
                let failed = response.status() == StatusCode::INTERNAL_SERVER_ERROR;
                (response, failed)
            }
            Ok(Err(HttpInvokeError::Timeout)) => (timeout(), true),
            Ok(Err(HttpInvokeError::NotHttp(_))) => (error::not_found(), false),
            Ok(Err(HttpInvokeError::Unavailable)) => (
                error::unavailable(
                    "plugin_unavailable",
                    "no instance of the plugin is free; try again",
                ),
                false,
            ),
            Ok(Err(HttpInvokeError::Trap | HttpInvokeError::NoResponse)) => (
                error::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "plugin_trap",
                    "the plugin failed while handling the request",
                ),
                true,
            ),
            Err(_elapsed) => {
                if let Some(total) = self.metrics.response_timeouts.hit() {
                    tracing::warn!(total, "504: response not ready within request_timeout_ms");
                }
                (timeout(), true)
            }
        };
        self.lifecycle.judge(plugin, own_failure);
        response
    }

    /// 429 `too_many_requests` with `Retry-After`: too many failed logins.
    fn throttled(&self, throttled: Throttled) -> Refused {
        let seconds = throttled.retry_after.as_secs().max(1);
        if let Some(total) = self.metrics.logins_throttled.hit() {
            tracing::warn!(retry_after = seconds, total, "429: too many failed logins");
        }
        too_many_requests("too many failed logins; try again later", seconds)
    }
}

/// Whether the request names its authority: in its URI (HTTP/2, absolute form) or in
/// exactly one valid `Host` header. RFC 9112 asks for 400 without it, and wasi-http refuses
/// to hand such a request to a plugin: let through, it would count as the plugin's failure
/// (and could push a new version on probation into a rollback).
fn require_authority<B>(request: &Request<B>) -> Result<(), Refused> {
    if has_authority(request) {
        return Ok(());
    }
    Err(Box::new(error::error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "a request needs one valid Host header",
    )))
}

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

/// The route and what the path gave its parameters, or 404 / 405 (with `Allow`).
fn found(routed: Routed<'_>) -> Result<(&Route, Params<'_>), Refused> {
    match routed {
        Routed::Route(route, params) => Ok((route, params)),
        Routed::NotFound => Err(Box::new(error::not_found())),
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
            Err(Box::new(response))
        }
    }
}

/// 504 `timeout`: the request's own deadline passed.
fn timeout() -> Response<HyperOutgoingBody> {
    error::error(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        "the request did not finish within its deadline",
    )
}

/// 429 `too_many_requests` with `Retry-After: seconds`.
fn too_many_requests(message: &str, seconds: u64) -> Refused {
    let mut response = error::error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    Box::new(response)
}

/// Whether `Content-Length` says the body is past `limit`: then 413 before a byte is read.
fn declared_past<B>(request: &Request<B>, limit: usize) -> bool {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > limit as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

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
