//! `[front]`: the limits every front door holds its clients to, and what happens past them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::shed::ShedSettings;

/// `[front]`: how long and how much the public front door waits for and accepts from a
/// client before refusing it (408, 431, 503).
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontConfig {
    /// Time to send a complete request head, counted from when the connection opens or its
    /// previous response ends (HTTP/1.1); past it: 408 and the connection is closed.
    pub header_read_timeout_ms: u64,
    /// Time a connection may sit with no request in progress before it is closed.
    pub idle_timeout_ms: u64,
    /// Time from a request's head to its response: reading the body (408 past it) and
    /// running the plugin (504 past it).
    pub request_timeout_ms: u64,
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Connections open at once from one client address; one more is answered 503 and
    /// closed, so one client cannot fill `max_connections` for everyone (the smaller of the
    /// two applies).
    pub max_connections_per_address: usize,
    /// Public listener: requests in flight at once from one client address; one more is
    /// answered 429 before it reaches a plugin, so one client's flood cannot exhaust the
    /// plugins' capacity (or trip their breakers) for everyone.
    pub max_requests_per_address: usize,
    /// Once a connection is asked to close (idle, or the host stopping) and has no request
    /// in progress, the time it gets to close itself before it is dropped: an HTTP/2 client
    /// that never answers the closing PING cannot keep its slot.
    pub close_grace_ms: u64,
    /// HTTP/2: the host PINGs a connection this often and closes it when the answer does
    /// not come within the same time.
    pub http2_ping_interval_ms: u64,
    /// HTTP/2: requests one connection may have open at once (hyper's default is 200).
    pub max_streams_per_connection: u32,
    /// A response write that makes no progress for this long (a client that does not
    /// read) closes the connection.
    pub write_timeout_ms: u64,
    /// Bytes of request bodies one connection may have buffered at once (its streams
    /// together); a body past it is answered 503.
    pub max_body_bytes_per_connection: usize,
    /// Bytes of request bodies the listener may have buffered at once, all connections
    /// together; a body past it is answered 503.
    pub max_body_bytes_buffered: usize,
    /// Public listener: adaptive load shedding (see [`super::shed`]). While the host's CPU
    /// use is over `shed_cpu_threshold`, a request past what the host has shown it can
    /// carry, from an address holding more than its share, is answered 503 `overloaded`.
    pub shedding: bool,
    /// CPU use of the host process, as a fraction of the cores it may use (a moving
    /// average), from which shedding starts.
    pub shed_cpu_threshold: f64,
    /// The window over which what the host can carry is measured, in ms.
    pub shed_window_ms: u64,
    /// Buckets the window is cut into.
    pub shed_buckets: usize,
    /// After a request is shed, shedding stays on this long even if the CPU use falls.
    pub shed_cool_off_ms: u64,
    /// Largest request head (request line and headers), in bytes; larger: 431.
    pub max_header_bytes: usize,
    /// Most header fields in one request; more: 431.
    pub max_headers: usize,
}

impl Default for FrontConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            max_connections: 1024,
            max_connections_per_address: 128,
            max_requests_per_address: 32,
            close_grace_ms: 2_000,
            http2_ping_interval_ms: 10_000,
            max_streams_per_connection: 100,
            write_timeout_ms: 15_000,
            max_body_bytes_per_connection: 4 * 1024 * 1024,
            max_body_bytes_buffered: 64 * 1024 * 1024,
            // go-zero's defaults.
            shedding: true,
            shed_cpu_threshold: 0.9,
            shed_window_ms: 5_000,
            shed_buckets: 50,
            shed_cool_off_ms: 1_000,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
        }
    }
}

/// hyper's smallest read buffer, and so the smallest `max_header_bytes`.
pub const MIN_HEADER_BYTES: usize = 8192;

impl FrontConfig {
    /// Every problem of the section, each with its fix.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_connections", self.max_connections as u64),
            (
                "max_connections_per_address",
                self.max_connections_per_address as u64,
            ),
            ("close_grace_ms", self.close_grace_ms),
            ("http2_ping_interval_ms", self.http2_ping_interval_ms),
            (
                "max_streams_per_connection",
                u64::from(self.max_streams_per_connection),
            ),
            ("write_timeout_ms", self.write_timeout_ms),
            (
                "max_body_bytes_per_connection",
                self.max_body_bytes_per_connection as u64,
            ),
            (
                "max_body_bytes_buffered",
                self.max_body_bytes_buffered as u64,
            ),
            ("max_headers", self.max_headers as u64),
            (
                "max_requests_per_address",
                self.max_requests_per_address as u64,
            ),
            ("shed_buckets", self.shed_buckets as u64),
        ] {
            if value == 0 {
                problems.push(format!("[front] {key} must be at least 1"));
            }
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            problems.push(format!(
                "[front] max_header_bytes must be at least {MIN_HEADER_BYTES}"
            ));
        }
        if !(self.shed_cpu_threshold > 0.0 && self.shed_cpu_threshold <= 1.0) {
            problems.push(
                "[front] shed_cpu_threshold must be above 0 and at most 1 (a fraction of the cores; \
                 `shedding = false` turns shedding off)"
                    .into(),
            );
        }
        if self.shed_window_ms < self.shed_buckets as u64 {
            problems.push(
                "[front] shed_window_ms must be at least shed_buckets (a bucket of 1 ms or more)"
                    .into(),
            );
        }
        if self.max_body_bytes_per_connection > self.max_body_bytes_buffered {
            problems.push(
                "[front] max_body_bytes_per_connection must be at most max_body_bytes_buffered"
                    .into(),
            );
        }
        if u32::try_from(self.max_connections).is_err() {
            problems.push(format!(
                "[front] max_connections must be at most {}",
                u32::MAX
            ));
        }
        problems
    }

    /// The shedder's settings.
    pub fn shedding(&self) -> ShedSettings {
        ShedSettings {
            enabled: self.shedding,
            cpu_threshold: self.shed_cpu_threshold,
            window: Duration::from_millis(self.shed_window_ms),
            buckets: self.shed_buckets,
            cool_off: Duration::from_millis(self.shed_cool_off_ms),
        }
    }
}
