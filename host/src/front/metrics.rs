//! What the front doors count: each refusal and why (for `GET /admin/front` and
//! `/metrics`, read from the same series), connections, and requests by route and status.
//! One set shared by every listener of a host; refusals are logged at most once a second
//! per kind ([`Refusals::hit`] says when), so an attack cannot flood the log.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::telemetry::metrics::{Histograms, Refusals, histograms, register};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route's pattern, or `unrouted`.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

pub struct FrontMetrics {
    /// Connections open now.
    pub connections_open: Gauge,
    pub connections_accepted: Counter,
    /// 503: over `[front] max_connections`.
    pub connections_refused: Refusals,
    /// 503: over `[front] max_connections_per_address`.
    pub address_connections_refused: Refusals,
    /// 429: requests in flight over `[front] max_requests_per_address`.
    pub address_requests_refused: Refusals,
    /// 503: shed while the host was overloaded (`[front] shedding`).
    pub requests_shed: Refusals,
    /// Connections dropped `close_grace_ms` after they were asked to close.
    pub close_forced: Counter,
    /// Connections closed for a write that made no progress within `write_timeout_ms`.
    pub write_timeouts: Refusals,
    /// 503: a request body past its connection's or the listener's body budget.
    pub bodies_over_budget: Refusals,
    /// 408: the request head did not arrive within `header_read_timeout_ms`.
    pub header_timeouts: Refusals,
    /// 431: a request head over `max_header_bytes` or `max_headers`.
    pub headers_too_large: Refusals,
    /// Connections closed after `idle_timeout_ms` without a request.
    pub idle_closed: Counter,
    /// 408: the request body did not arrive within `request_timeout_ms`.
    pub body_timeouts: Refusals,
    /// 504: the response was not ready within `request_timeout_ms`.
    pub response_timeouts: Refusals,
    /// 401 on a protected route.
    pub unauthorized: Refusals,
    /// 429 on the login route.
    pub logins_throttled: Refusals,
    /// 401 on the admin listener.
    pub admin_unauthorized: Refusals,
    /// Connections whose TLS handshake failed or did not end within
    /// `header_read_timeout_ms` (a plaintext client of a TLS listener, a certificate the
    /// CA did not sign, none).
    pub tls_handshakes_failed: Refusals,
    /// 403 on the rpc listener: a call `[cluster] allow` does not let its caller make.
    pub rpc_forbidden: Refusals,
    requests: Family<RequestLabels, Counter>,
    durations: Histograms<RouteLabel>,
    /// Handles on the series of `requests` and `durations` by route, so that a request to a
    /// route and status seen before allocates no label strings (routes come from config
    /// and statuses are few: this stays as small as the families themselves).
    seen: RwLock<HashMap<String, RouteSeries>>,
}

/// The series of one route.
struct RouteSeries {
    duration: Histogram,
    by_status: Vec<(u16, Counter)>,
}

impl FrontMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let mut refusals = |name: &str, help: &str| Refusals::register(registry, name, help);
        let connections_refused = refusals(
            "front_connections_refused",
            "Connections over [front] max_connections, answered 503",
        );
        let address_connections_refused = refusals(
            "front_address_connections_refused",
            "Connections over [front] max_connections_per_address, answered 503",
        );
        let address_requests_refused = refusals(
            "front_address_requests_refused",
            "Requests in flight over [front] max_requests_per_address, answered 429",
        );
        let requests_shed = refusals(
            "front_requests_shed",
            "Requests shed while the host was overloaded ([front] shedding), answered 503",
        );
        let write_timeouts = refusals(
            "front_write_timeouts",
            "Connections closed for a write without progress within write_timeout_ms",
        );
        let bodies_over_budget = refusals(
            "front_bodies_over_budget",
            "Request bodies past max_body_bytes_per_connection or max_body_bytes_buffered (503)",
        );
        let header_timeouts = refusals(
            "front_header_timeouts",
            "Request heads not received within header_read_timeout_ms (408)",
        );
        let headers_too_large = refusals(
            "front_headers_too_large",
            "Request heads over max_header_bytes or max_headers (431)",
        );
        let body_timeouts = refusals(
            "front_body_timeouts",
            "Request bodies not received within request_timeout_ms (408)",
        );
        let response_timeouts = refusals(
            "front_response_timeouts",
            "Responses not ready within request_timeout_ms (504)",
        );
        let unauthorized = refusals(
            "front_unauthorized",
            "Requests to protected routes without a valid token (401)",
        );
        let logins_throttled = refusals(
            "front_logins_throttled",
            "Logins refused for too many failures (429)",
        );
        let admin_unauthorized = refusals(
            "admin_unauthorized",
            "Admin requests without the admin token (401)",
        );
        let tls_handshakes_failed = refusals(
            "front_tls_handshakes_failed",
            "Connections to a TLS listener whose handshake failed or timed out",
        );
        let rpc_forbidden = refusals(
            "rpc_forbidden",
            "rpc calls refused because [cluster] allow does not let their caller make them (403)",
        );
        let m = Self {
            connections_open: Gauge::default(),
            connections_accepted: Counter::default(),
            idle_closed: Counter::default(),
            close_forced: Counter::default(),
            connections_refused,
            address_connections_refused,
            address_requests_refused,
            requests_shed,
            write_timeouts,
            bodies_over_budget,
            header_timeouts,
            headers_too_large,
            body_timeouts,
            response_timeouts,
            unauthorized,
            logins_throttled,
            admin_unauthorized,
            tls_handshakes_failed,
            rpc_forbidden,
            requests: Family::default(),
            durations: histograms(),
            seen: RwLock::default(),
        };
        register! { registry,
            "front_connections_open", "Connections open now", m.connections_open;
            "front_connections_accepted", "Connections accepted", m.connections_accepted;
            "front_idle_closed", "Connections closed after idle_timeout_ms without a request", m.idle_closed;
            "front_close_forced", "Connections dropped close_grace_ms after they were asked to close", m.close_forced;
            "http_requests", "HTTP requests answered, by route and status", m.requests;
            "http_request_duration_seconds", "Time to the response head, by route", m.durations;
        }
        m
    }

    /// One request answered.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(series) = self.seen.read().get(route)
            && let Some((_, counter)) = series.by_status.iter().find(|(s, _)| *s == status)
        {
            series.duration.observe(seconds);
            counter.inc();
            return;
        }
        self.first_request(route, status, seconds);
    }

    /// A route or a status of it not seen before: its series, looked up once and kept.
    #[cold]
    fn first_request(&self, route: &str, status: u16, seconds: f64) {
        let mut seen = self.seen.write();
        let series = seen
            .entry(route.to_string())
            .or_insert_with(|| RouteSeries {
                duration: self
                    .durations
                    .get_or_create(&RouteLabel {
                        route: route.to_string(),
                    })
                    .clone(),
                by_status: Vec::new(),
            });
        series.duration.observe(seconds);
        match series.by_status.iter().find(|(s, _)| *s == status) {
            Some((_, counter)) => {
                counter.inc();
            }
            None => {
                let labels = RequestLabels {
                    route: route.to_string(),
                    status,
                };
                let counter = self.requests.get_or_create(&labels).clone();
                counter.inc();
                series.by_status.push((status, counter));
            }
        }
    }

    /// `GET /admin/front`.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "connections_open": self.connections_open.get(),
            "connections_accepted": self.connections_accepted.get(),
            "connections_refused": self.connections_refused.get(),
            "address_connections_refused": self.address_connections_refused.get(),
            "address_requests_refused": self.address_requests_refused.get(),
            "requests_shed": self.requests_shed.get(),
            "close_forced": self.close_forced.get(),
            "write_timeouts": self.write_timeouts.get(),
            "bodies_over_budget": self.bodies_over_budget.get(),
            "header_timeouts": self.header_timeouts.get(),
            "headers_too_large": self.headers_too_large.get(),
            "idle_closed": self.idle_closed.get(),
            "body_timeouts": self.body_timeouts.get(),
            "response_timeouts": self.response_timeouts.get(),
            "unauthorized": self.unauthorized.get(),
            "logins_throttled": self.logins_throttled.get(),
            "tls_handshakes_failed": self.tls_handshakes_failed.get(),
            "rpc_forbidden": self.rpc_forbidden.get(),
            "admin_unauthorized": self.admin_unauthorized.get(),
        })
    }
}
