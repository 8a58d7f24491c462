//! The embedded, single-node registry.

use std::collections::BTreeSet;
use std::sync::RwLock;

use super::{Endpoint, Registry};

pub struct MemoryRegistry {
    node: String,
    services: RwLock<BTreeSet<String>>,
}

impl MemoryRegistry {
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_string(),
            services: RwLock::default(),
        }
    }
}

#[async_trait::async_trait]
impl Registry for MemoryRegistry {
    fn publish(&self, services: Vec<String>) {
        *self.services.write().expect("registry lock") = services.into_iter().collect();
    }

    async fn withdraw(&self) {
        self.services.write().expect("registry lock").clear();
    }

    fn endpoints(&self, service: &str) -> Vec<Endpoint> {
        let services = self.services.read().expect("registry lock");
        services
            .get(service)
            .map(|service| Endpoint {
                service: service.clone(),
                node: self.node.clone(),
                address: String::new(),
                local: true,
            })
            .into_iter()
            .collect()
    }

    fn services(&self) -> Vec<String> {
        let services = self.services.read().expect("registry lock");
        services.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publish_replaces_and_withdraw_clears() {
        let r = MemoryRegistry::new("n1");
        r.publish(vec!["user".into(), "auth".into()]);
        assert_eq!(r.endpoints("user")[0].node, "n1");
        assert!(r.endpoints("user")[0].local);
        r.publish(vec!["auth".into()]);
        assert!(r.endpoints("user").is_empty());
        assert_eq!(r.services(), vec!["auth".to_string()]);
        r.withdraw().await;
        assert!(r.services().is_empty());
    }
}
