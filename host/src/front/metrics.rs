//! Counters of what the front doors refused and why, for `GET /admin/front`: a flood of
//! slow or oversized clients, failed logins or bad tokens shows here as well as in the log.
//!
//! Process-wide, like any metrics registry: every listener served by [`super::serve`]
//! counts into the same counters. Refusals are logged at most once a second per kind
//! ([`Counter::hit`] says when), so an attack cannot flood the log.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

/// A monotonic count, and the second it was last logged.
pub struct Counter {
    count: AtomicU64,
    logged_at: AtomicU64,
}

impl Counter {
    const fn new() -> Self {
        Self {
            count: AtomicU64::new(0),
            logged_at: AtomicU64::new(0),
        }
    }

    /// Counts one event; `Some(total)` when it should be logged (the first of its second).
    pub fn hit(&self) -> Option<u64> {
        let total = self.count.fetch_add(1, Relaxed) + 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let previous = self.logged_at.swap(now, Relaxed);
        (previous != now).then_some(total)
    }

    pub fn get(&self) -> u64 {
        self.count.load(Relaxed)
    }
}

pub struct FrontMetrics {
    /// Connections open now (a gauge).
    pub connections_open: AtomicU64,
    pub connections_accepted: Counter,
    /// 503: over `[front] max_connections`.
    pub connections_refused: Counter,
    /// 408: the request head did not arrive within `header_read_timeout_ms`.
    pub header_timeouts: Counter,
    /// 431: a request head over `max_header_bytes` or `max_headers`.
    pub headers_too_large: Counter,
    /// Connections closed after `idle_timeout_ms` without a request.
    pub idle_closed: Counter,
    /// 408: the request body did not arrive within `request_timeout_ms`.
    pub body_timeouts: Counter,
    /// 504: the response was not ready within `request_timeout_ms`.
    pub response_timeouts: Counter,
    /// 401 on a protected route.
    pub unauthorized: Counter,
    /// 429 on the login route.
    pub logins_throttled: Counter,
    /// 401 on the admin listener.
    pub admin_unauthorized: Counter,
}

pub static METRICS: FrontMetrics = FrontMetrics {
    connections_open: AtomicU64::new(0),
    connections_accepted: Counter::new(),
    connections_refused: Counter::new(),
    header_timeouts: Counter::new(),
    headers_too_large: Counter::new(),
    idle_closed: Counter::new(),
    body_timeouts: Counter::new(),
    response_timeouts: Counter::new(),
    unauthorized: Counter::new(),
    logins_throttled: Counter::new(),
    admin_unauthorized: Counter::new(),
};

impl FrontMetrics {
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "connections_open": self.connections_open.load(Relaxed),
            "connections_accepted": self.connections_accepted.get(),
            "connections_refused": self.connections_refused.get(),
            "header_timeouts": self.header_timeouts.get(),
            "headers_too_large": self.headers_too_large.get(),
            "idle_closed": self.idle_closed.get(),
            "body_timeouts": self.body_timeouts.get(),
            "response_timeouts": self.response_timeouts.get(),
            "unauthorized": self.unauthorized.get(),
            "logins_throttled": self.logins_throttled.get(),
            "admin_unauthorized": self.admin_unauthorized.get(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_hit_and_logs_one_a_second() {
        let c = Counter::new();
        assert_eq!(c.hit(), Some(1));
        let logged = (0..1000).filter_map(|_| c.hit()).count();
        assert!(logged <= 1, "{logged} log lines within a second or two");
        assert_eq!(c.get(), 1001);
    }
}
