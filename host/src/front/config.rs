//! `[front]`: the limits every front door holds its clients to, and what happens past them.

use serde::{Deserialize, Serialize};

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
            ("max_headers", self.max_headers as u64),
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
        if u32::try_from(self.max_connections).is_err() {
            problems.push(format!(
                "[front] max_connections must be at most {}",
                u32::MAX
            ));
        }
        problems
    }
}
