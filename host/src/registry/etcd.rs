//! The etcd registry, for many nodes.
//!
//! Layout: `<prefix>/services/<service>/<node>` = `{"address": "<rpc address>"}`, every key
//! of a node under one lease of `ttl` seconds, so a node that dies disappears by itself.
//!
//! Two background tasks, each of which reconnects forever with capped exponential backoff
//! (the bug go-micro users hit most is a node that never re-registers after an etcd outage;
//! here the publisher grants a new lease and rewrites every key as soon as etcd answers):
//! - the publisher keeps this node's keys in etcd: grant a lease, put the keys, keep the
//!   lease alive, and follow changes of the published set;
//! - the watcher keeps a local view of the whole prefix: a full read, then a watch from the
//!   next revision. Lookups read that view only, and an outage leaves it as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::RwLock;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, EventType, GetOptions, PutOptions, WatchOptions};
use tokio::sync::watch;

use super::RegistryConfig;
use super::{Backend, Endpoint};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub struct Etcd {
    node: String,
    /// `(service, node) -> address`, as last seen in etcd.
    view: RwLock<BTreeMap<(String, String), String>>,
    /// The services this node wants published; the publisher follows it.
    desired: watch::Sender<BTreeSet<String>>,
    /// Revoking the lease withdraws every key at once.
    lease: RwLock<Option<(Client, i64)>>,
    stop: watch::Sender<bool>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyValue {
    address: String,
}

fn services_prefix(prefix: &str) -> String {
    format!("{}/services/", prefix.trim_end_matches('/'))
}

/// Waits out a failure: doubles the delay up to the cap.
async fn back_off(delay: &mut Duration) {
    tokio::time::sleep(*delay).await;
    *delay = (*delay * 2).min(BACKOFF_MAX);
}

impl Etcd {
    /// Starts the publisher and the watcher for `node`, reachable at `address`.
    pub fn start(config: &RegistryConfig, node: &str, address: &str) -> Arc<Self> {
        let (desired, _) = watch::channel(BTreeSet::new());
        let (stop, _) = watch::channel(false);
        let registry = Arc::new(Self {
            node: node.to_string(),
            view: RwLock::default(),
            desired,
            lease: RwLock::default(),
            stop,
        });
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        let endpoints = config.endpoints.clone();
        let prefix = services_prefix(&config.prefix);
        tokio::spawn(registry.clone().publish_forever(
            endpoints.clone(),
            options.clone(),
            prefix.clone(),
            address.to_string(),
            config.ttl_secs.max(2) as i64,
        ));
        tokio::spawn(registry.clone().watch_forever(endpoints, options, prefix));
        registry
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    async fn publish_forever(
        self: Arc<Self>,
        endpoints: Vec<String>,
        options: ConnectOptions,
        prefix: String,
        address: String,
        ttl: i64,
    ) {
        let mut delay = BACKOFF_MIN;
        let value = serde_json::to_string(&KeyValue { address }).expect("json");
        while !self.stopped() {
            match self
                .publish_once(&endpoints, &options, &prefix, &value, ttl, &mut delay)
                .await
            {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(node = %self.node, error = %e, retry_in_ms = delay.as_millis() as u64, "etcd registration lost, retrying");
                    back_off(&mut delay).await;
                }
            }
        }
    }

    /// One session: a lease, the keys, then keep-alives and updates until something fails
    /// (an error) or the registry is withdrawn (Ok).
    async fn publish_once(
        &self,
        endpoints: &[String],
        options: &ConnectOptions,
        prefix: &str,
        value: &str,
        ttl: i64,
        delay: &mut Duration,
    ) -> Result<(), etcd_client::Error> {
        let mut client = Client::connect(endpoints, Some(options.clone())).await?;
        let lease = client.lease_grant(ttl, None).await?.id();
        let (mut keeper, mut acks) = client.lease_keep_alive(lease).await?;
        *self.lease.write() = Some((client.clone(), lease));
        let mut desired = self.desired.subscribe();
        let mut published = BTreeSet::new();
        let mut stop = self.stop.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs((ttl / 3).max(1) as u64));
        loop {
            let wanted = desired.borrow_and_update().clone();
            for service in wanted.difference(&published) {
                let key = format!("{prefix}{service}/{}", self.node);
                client
                    .put(key, value, Some(PutOptions::new().with_lease(lease)))
                    .await?;
            }
            for service in published.difference(&wanted) {
                client
                    .delete(format!("{prefix}{service}/{}", self.node), None)
                    .await?;
            }
            if published != wanted {
                tracing::info!(node = %self.node, lease, services = ?wanted, "registered in etcd");
            }
            published = wanted;
            *delay = BACKOFF_MIN;
            tokio::select! {
                changed = desired.changed() => {
                    if changed.is_err() { return Ok(()); }
                }
                _ = tick.tick() => {
                    keeper.keep_alive().await?;
                    match acks.message().await? {
                        Some(ack) if ack.ttl() > 0 => {}
                        _ => return Err(etcd_client::Error::LeaseKeepAliveError("lease expired".into())),
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    async fn watch_forever(
        self: Arc<Self>,
        endpoints: Vec<String>,
        options: ConnectOptions,
        prefix: String,
    ) {
        let mut delay = BACKOFF_MIN;
        while !self.stopped() {
            if let Err(e) = self
                .watch_once(&endpoints, &options, &prefix, &mut delay)
                .await
            {
                tracing::warn!(node = %self.node, error = %e, "etcd watch lost, keeping the last view and retrying");
                back_off(&mut delay).await;
            }
        }
    }

    async fn watch_once(
        &self,
        endpoints: &[String],
        options: &ConnectOptions,
        prefix: &str,
        delay: &mut Duration,
    ) -> Result<(), etcd_client::Error> {
        let mut client = Client::connect(endpoints, Some(options.clone())).await?;
        let snapshot = client
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await?;
        let revision = snapshot.header().map_or(0, |h| h.revision());
        let mut view = BTreeMap::new();
        for kv in snapshot.kvs() {
            if let Some(entry) = parse(prefix, kv.key(), kv.value()) {
                view.insert(entry.0, entry.1);
            }
        }
        *self.view.write() = view;
        let mut stream = client
            .watch(
                prefix,
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await?;
        *delay = BACKOFF_MIN;
        let mut stop = self.stop.subscribe();
        loop {
            let message = tokio::select! {
                message = stream.message() => message?,
                _ = stop.changed() => return Ok(()),
            };
            let Some(response) = message else {
                return Err(etcd_client::Error::WatchError("watch closed".into()));
            };
            if response.canceled() {
                return Err(etcd_client::Error::WatchError("watch canceled".into()));
            }
            let mut view = self.view.write();
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                match event.event_type() {
                    EventType::Put => {
                        if let Some((key, address)) = parse(prefix, kv.key(), kv.value()) {
                            view.insert(key, address);
                        }
                    }
                    EventType::Delete => {
                        if let Some((key, _)) = parse(prefix, kv.key(), b"{\"address\":\"\"}") {
                            view.remove(&key);
                        }
                    }
                }
            }
        }
    }
}

/// `(service, node) -> address` of one key, if it is ours to read.
fn parse(prefix: &str, key: &[u8], value: &[u8]) -> Option<((String, String), String)> {
    let key = std::str::from_utf8(key).ok()?.strip_prefix(prefix)?;
    let (service, node) = key.split_once('/')?;
    let value: KeyValue = serde_json::from_slice(value).ok()?;
    Some(((service.to_string(), node.to_string()), value.address))
}

#[async_trait::async_trait]
impl Backend for Etcd {
    fn publish(&self, services: Vec<String>) {
        self.desired.send_replace(services.into_iter().collect());
    }

    async fn withdraw(&self) {
        let _ = self.stop.send(true);
        let lease = self.lease.write().take();
        if let Some((mut client, lease)) = lease {
            match client.lease_revoke(lease).await {
                Ok(_) => tracing::info!(node = %self.node, "deregistered from etcd"),
                Err(e) => {
                    tracing::warn!(node = %self.node, error = %e, "cannot revoke the lease; the keys expire with it")
                }
            }
        }
    }

    fn endpoints(&self, service: &str) -> Vec<Endpoint> {
        let view = self.view.read();
        let mut found: Vec<Endpoint> = view
            .range((service.to_string(), String::new())..)
            .take_while(|((s, _), _)| s == service)
            .map(|((service, node), address)| Endpoint {
                service: service.clone(),
                local: *node == self.node,
                node: node.clone(),
                address: address.clone(),
            })
            .collect();
        found.sort_by_key(|e| !e.local);
        found
    }

    fn services(&self) -> Vec<String> {
        let view = self.view.read();
        let names: BTreeSet<_> = view.keys().map(|(service, _)| service.clone()).collect();
        names.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn keys_parse_back() {
        let parsed = parse(
            "/micro-api/services/",
            b"/micro-api/services/user/node-2",
            br#"{"address":"127.0.0.1:7002"}"#,
        );
        assert_eq!(
            parsed,
            Some((("user".into(), "node-2".into()), "127.0.0.1:7002".into()))
        );
        assert_eq!(parse("/micro-api/services/", b"/other/x/y", b"{}"), None);
    }
}
