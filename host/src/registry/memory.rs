//! The embedded, single-node registry.

use parking_lot::RwLock;
use std::collections::BTreeSet;

use super::{Backend, Endpoint};

pub struct Memory {
    node: String,
    services: RwLock<BTreeSet<String>>,
}

impl Memory {
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_string(),
            services: RwLock::default(),
        }
    }
}

#[async_trait::async_trait]
impl Backend for Memory {
    fn publish(&self, services: Vec<String>) {
        *self.services.write() = services.into_iter().collect();
    }

    async fn withdraw(&self) {
        self.services.write().clear();
    }

    fn endpoints(&self, service: &str) -> Vec<Endpoint> {
        let services = self.services.read();
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
        let services = self.services.read();
        services.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publish_replaces_and_withdraw_clears() {
        let r = Memory::new("n1");
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
