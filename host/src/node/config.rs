//! `[cluster]`: how the nodes of a cluster call each other, and what each may call.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::allow::{ANY_CALLER, Pattern};
use super::tls::NodeTls;

/// How the nodes of a cluster call each other.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The secret every node presents on the rpc listener (better from
    /// `MICRO_API__CLUSTER__SECRET`); required with more than one node. With TLS it is a
    /// second factor.
    pub secret: Option<String>,
    /// Connections kept per remote node.
    pub pool_size: usize,
    /// How long a node whose connections fail is left out before it is tried again.
    pub eject_ms: u64,
    /// `[cluster.tls]`: mutual TLS between nodes. Without it the rpc wire is plaintext,
    /// secret included: for one machine or a trusted network only.
    pub tls: Option<TlsConfig>,
    /// What each caller may call on this node's rpc listener: a caller's name (a DNS name
    /// its TLS certificate carries; `"*"` is every caller holding the secret, and the only
    /// name there is without TLS) to patterns, `"*"`, a service (`"user"`) or one method
    /// (`"user.GetUserByName"`). A caller may call what `"*"` and each of its names allow.
    pub allow: BTreeMap<String, Vec<String>>,
    /// Methods that check a password: `"service.method"` to the JSON field of the payload
    /// holding the user name. Called by another node, they are counted by the login limiter
    /// against that name (`[login_limit] max_failures_per_user`).
    pub login_checks: BTreeMap<String, String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            secret: None,
            pool_size: 10,
            eject_ms: 5000,
            tls: None,
            allow: BTreeMap::from([(ANY_CALLER.into(), vec!["*".into()])]),
            login_checks: BTreeMap::from([("user.CheckPassword".into(), "name".into())]),
        }
    }
}

/// `[cluster.tls]`: this node's certificate and key, and the CA that signs every node's.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM: this node's certificate (then any intermediates), signed by `ca`.
    pub cert: PathBuf,
    /// PEM: the private key of `cert`.
    pub key: PathBuf,
    /// PEM: the CA certificate(s) every node's certificate is signed by.
    pub ca: PathBuf,
    /// The DNS name every node's certificate carries, which a caller verifies (nodes are
    /// registered by IP address, which certificates need not carry).
    pub server_name: String,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: PathBuf::new(),
            key: PathBuf::new(),
            ca: PathBuf::new(),
            server_name: "micro-api-node".into(),
        }
    }
}

impl ClusterConfig {
    /// Every problem of the section, each with its fix.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(tls) = &self.tls
            && let Err(e) = NodeTls::load(tls)
        {
            problems.push(e.to_string());
        }
        for (caller, patterns) in &self.allow {
            if caller != ANY_CALLER && self.tls.is_none() {
                problems.push(format!(
                    "[cluster] allow.{caller:?}: callers have names only with [cluster.tls]; without it, list what every caller may call under \"*\""
                ));
            }
            if caller.is_empty() {
                problems.push(
                    "[cluster] allow: a caller is \"*\" or a DNS name of its certificate".into(),
                );
            }
            for pattern in patterns {
                if Pattern::parse(pattern).is_none() {
                    problems.push(format!(
                        "[cluster] allow.{caller:?}: {pattern:?} is not \"*\", a service (\"user\") or a method (\"user.GetUserByName\")"
                    ));
                }
            }
        }
        for (method, field) in &self.login_checks {
            if !matches!(Pattern::parse(method), Some(Pattern::Method(..))) {
                problems.push(format!(
                    "[cluster] login_checks: {method:?} is not a method (\"user.CheckPassword\")"
                ));
            }
            if field.is_empty() {
                problems.push(format!(
                    "[cluster] login_checks.{method:?}: name the JSON field holding the user name (\"name\")"
                ));
            }
        }
        problems
    }
}
