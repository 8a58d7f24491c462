//! The embedded, single-node registry.

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::{Endpoint, Registry};

#[derive(Default)]
pub struct MemoryRegistry {
    services: RwLock<BTreeMap<String, Vec<Endpoint>>>,
}

impl Registry for MemoryRegistry {
    fn register(&self, endpoint: Endpoint) {
        let mut services = self.services.write().expect("registry lock");
        let endpoints = services.entry(endpoint.service.clone()).or_default();
        endpoints.retain(|e| e.node != endpoint.node);
        endpoints.push(endpoint);
        endpoints.sort_by_key(|e| !e.local);
    }

    fn deregister(&self, service: &str, node: &str) {
        let mut services = self.services.write().expect("registry lock");
        if let Some(endpoints) = services.get_mut(service) {
            endpoints.retain(|e| e.node != node);
            if endpoints.is_empty() {
                services.remove(service);
            }
        }
    }

    fn endpoints(&self, service: &str) -> Vec<Endpoint> {
        let services = self.services.read().expect("registry lock");
        services.get(service).cloned().unwrap_or_default()
    }

    fn services(&self) -> Vec<String> {
        let services = self.services.read().expect("registry lock");
        services.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(service: &str, node: &str, local: bool) -> Endpoint {
        Endpoint {
            service: service.into(),
            node: node.into(),
            address: if local {
                String::new()
            } else {
                format!("{node}:7000")
            },
            local,
        }
    }

    #[test]
    fn local_first_and_deregister() {
        let r = MemoryRegistry::default();
        r.register(endpoint("user", "b", false));
        r.register(endpoint("user", "a", true));
        r.register(endpoint("user", "a", true));
        let found = r.endpoints("user");
        assert_eq!(found.len(), 2);
        assert!(found[0].local);
        r.deregister("user", "a");
        r.deregister("user", "b");
        assert!(r.endpoints("user").is_empty());
        assert!(r.services().is_empty());
    }
}
