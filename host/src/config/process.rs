//! The sections of the process as a whole, read by what starts and stops it: its
//! listeners and shutdown (`[server]`) and who may use the admin listener (`[admin]`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::settings::Secret;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub body_limit: usize,
    /// This node's name in the registry.
    pub node_id: String,
    /// The internal rpc listener other nodes call (HTTP/2); none on a single node.
    pub rpc: Option<SocketAddr>,
    /// On SIGTERM: how long to keep serving after deregistering, while other nodes notice.
    pub shutdown_grace_ms: u64,
    /// Then: how long requests in flight may take to finish.
    pub drain_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            admin: ([127, 0, 0, 1], 9090).into(),
            body_limit: 1024 * 1024,
            node_id: "node-1".into(),
            rpc: None,
            shutdown_grace_ms: 500,
            drain_timeout_ms: 10_000,
        }
    }
}

/// `[admin]`: when `token` is set, every admin endpoint but `/admin/health/live` asks for
/// `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Best set through `MICRO_API__ADMIN__TOKEN`; at least 16 characters. Required when
    /// `[server] admin` is not a loopback address.
    pub token: Option<Secret>,
    /// Host names (without port) the admin listener answers besides IP addresses and
    /// `localhost`; any other `Host` is refused (403), so a DNS-rebound page cannot read it.
    pub allowed_hosts: Vec<String>,
}

impl ServerConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.body_limit == 0 {
            problems.push("[server] body_limit must be at least 1 byte".into());
        }
        problems
    }
}

impl AdminConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self
            .token
            .as_ref()
            .is_some_and(|t| t.expose().trim().len() < 16)
        {
            problems.push(
                "[admin] token must be at least 16 characters (or unset: no admin auth)".into(),
            );
        }
        for host in &self.allowed_hosts {
            if host.is_empty() || host.contains([':', '/', ' ']) {
                problems.push(format!(
                    "[admin] allowed_hosts: {host:?} must be a bare host name, without port or scheme"
                ));
            }
        }
        problems
    }
}
