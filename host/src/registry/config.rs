//! `[registry]`: which backend, and for etcd where it is and how long a lease lives.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RegistryBackend {
    Memory,
    Etcd,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    pub backend: RegistryBackend,
    /// etcd endpoints, such as `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Key prefix of this cluster in etcd.
    pub prefix: String,
    /// Lease TTL: a node that stops renewing disappears after this long.
    pub ttl_secs: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            backend: RegistryBackend::Memory,
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/micro-api".into(),
            ttl_secs: 10,
        }
    }
}

impl RegistryConfig {
    /// Every problem of the section, each with its fix.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.backend == RegistryBackend::Etcd && self.endpoints.is_empty() {
            problems.push("[registry] endpoints: list at least one etcd endpoint".into());
        }
        problems
    }
}
