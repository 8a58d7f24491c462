//! Calls to services on other nodes, over the internal rpc listener of the node that
//! serves them (HTTP/2, one multiplexed connection pool per node; over mutual TLS with
//! `[cluster.tls]`).
//!
//! The wire format is small on purpose: `POST /rpc/<service>/<method>`, the payload as the
//! body, the cluster secret as a bearer token, the remaining deadline in milliseconds and
//! the call depth as headers. The answer is the callee's bytes (200) or an [`Error`] as
//! JSON (any other status), so a remote error reaches the caller as if it were local.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;

use super::ClusterConfig;
use super::tls::NodeTls;
use crate::capability::CallContext;
use crate::registry::Endpoint;
use crate::rpc::Error;

pub const DEADLINE_HEADER: &str = "x-micro-api-deadline-ms";
pub const DEPTH_HEADER: &str = "x-micro-api-depth";

/// The connection pools: plaintext, or TLS with `[cluster.tls]`.
enum Pools {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
}

impl Pools {
    fn scheme(&self) -> &'static str {
        match self {
            Self::Plain(_) => "http",
            Self::Tls(_) => "https",
        }
    }

    fn request(&self, request: http::Request<Full<Bytes>>) -> ResponseFuture {
        match self {
            Self::Plain(client) => client.request(request),
            Self::Tls(client) => client.request(request),
        }
    }
}

pub struct RemoteNodes {
    pools: Pools,
    secret: String,
    eject_for: Duration,
    /// Calls in flight per node, for power-of-two-choices.
    in_flight: Mutex<HashMap<String, Arc<AtomicU32>>>,
    /// Nodes whose connections failed, until when they are left out.
    ejected: Mutex<HashMap<String, Instant>>,
}

/// Decrements a node's in-flight count however the call ends.
struct InFlight(Arc<AtomicU32>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RemoteNodes {
    /// Calls over TLS when `tls` is given (`[cluster.tls]`), else in plaintext.
    pub fn new(cluster: &ClusterConfig, tls: Option<&NodeTls>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .http2_only(true)
            .pool_max_idle_per_host(cluster.pool_size)
            .pool_idle_timeout(Duration::from_secs(30));
        let pools = match tls {
            None => Pools::Plain(builder.build(connector)),
            Some(tls) => {
                connector.enforce_http(false);
                let connector = HttpsConnectorBuilder::new()
                    .with_tls_config(tls.client.clone())
                    .https_only()
                    .with_server_name_resolver(FixedServerNameResolver::new(
                        tls.server_name.clone(),
                    ))
                    .enable_http2()
                    .wrap_connector(connector);
                Pools::Tls(builder.build(connector))
            }
        };
        Self {
            pools,
            secret: cluster.secret.clone().unwrap_or_default(),
            eject_for: Duration::from_millis(cluster.eject_ms),
            in_flight: Mutex::default(),
            ejected: Mutex::default(),
        }
    }

    fn counter(&self, node: &str) -> Arc<AtomicU32> {
        self.in_flight
            .lock()
            .entry(node.to_string())
            .or_default()
            .clone()
    }

    fn is_ejected(&self, node: &str) -> bool {
        let mut ejected = self.ejected.lock();
        match ejected.get(node) {
            Some(until) if Instant::now() < *until => true,
            Some(_) => {
                ejected.remove(node);
                false
            }
            None => false,
        }
    }

    fn eject(&self, node: &str) {
        tracing::warn!(%node, for_ms = self.eject_for.as_millis() as u64, "ejecting a node whose connections fail");
        self.ejected
            .lock()
            .insert(node.to_string(), Instant::now() + self.eject_for);
    }

    /// Power of two choices among the remote endpoints that are not ejected: of two picked
    /// at random, the one with fewer calls in flight.
    pub fn choose<'a>(&self, endpoints: &'a [Endpoint]) -> Option<&'a Endpoint> {
        let healthy: Vec<&Endpoint> = endpoints
            .iter()
            .filter(|e| !e.local && !e.address.is_empty() && !self.is_ejected(&e.node))
            .collect();
        match healthy.len() {
            0 => None,
            1 => Some(healthy[0]),
            n => {
                let a = healthy[rand::random_range(0..n)];
                let b = healthy[rand::random_range(0..n)];
                let load = |e: &Endpoint| self.counter(&e.node).load(Ordering::Relaxed);
                Some(if load(b) < load(a) { b } else { a })
            }
        }
    }

    pub async fn call(
        &self,
        endpoint: &Endpoint,
        method: &str,
        payload: Vec<u8>,
        call: CallContext,
    ) -> Result<Vec<u8>, Error> {
        let counter = self.counter(&endpoint.node);
        counter.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(counter);
        let remaining = call.deadline.saturating_duration_since(Instant::now());
        let request = http::Request::post(format!(
            "{}://{}/rpc/{}/{method}",
            self.pools.scheme(),
            endpoint.address,
            endpoint.service
        ))
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", self.secret),
        )
        .header(DEADLINE_HEADER, remaining.as_millis().to_string())
        .header(DEPTH_HEADER, call.depth.to_string())
        .header("traceparent", call.trace.to_string())
        .body(Full::new(Bytes::from(payload)))
        .map_err(|e| Error::Invalid(e.to_string()))?;
        let response = match self.pools.request(request).await {
            Ok(response) => response,
            Err(e) => {
                if e.is_connect() {
                    self.eject(&endpoint.node);
                }
                return Err(Error::Unavailable(format!(
                    "{} on node {} cannot be reached",
                    endpoint.service, endpoint.node
                )));
            }
        };
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| Error::Unavailable(format!("node {} hung up", endpoint.node)))?
            .to_bytes();
        if status.is_success() {
            return Ok(body.to_vec());
        }
        Err(serde_json::from_slice(&body).unwrap_or_else(|_| {
            Error::Unavailable(format!("node {} answered {status}", endpoint.node))
        }))
    }
}
