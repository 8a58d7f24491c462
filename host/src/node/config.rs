//! `[cluster]`: how the nodes of a cluster call each other.

use serde::{Deserialize, Serialize};

/// How the nodes of a cluster call each other.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The secret every node presents on the rpc listener (better from
    /// `MICRO_API__CLUSTER__SECRET`); required with more than one node.
    pub secret: Option<String>,
    /// Connections kept per remote node.
    pub pool_size: usize,
    /// How long a node whose connections fail is left out before it is tried again.
    pub eject_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            secret: None,
            pool_size: 10,
            eject_ms: 5000,
        }
    }
}
