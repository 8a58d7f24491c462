//! `micro-api serve`: start the host, bind the public, admin and (with more than one node)
//! internal rpc listeners, and run until SIGINT or SIGTERM.
//!
//! Shutdown is graceful and ordered so that no accepted request fails: fail readiness,
//! announce the close on every HTTP/1.1 answer and deregister from the registry, keep
//! serving for `shutdown_grace_ms` while other nodes and clients notice, then stop
//! accepting (after the connections already waiting) and let requests in flight finish,
//! up to `drain_timeout_ms`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::live::LiveConfig;
use crate::front;
use crate::host::Host;

/// A built host with its bound listeners.
pub struct Server {
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub rpc_addr: Option<SocketAddr>,
    pub host: Arc<Host>,
    listeners: Listeners,
}

struct Listeners {
    http: TcpListener,
    admin: TcpListener,
    rpc: Option<TcpListener>,
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({what}): {e}"))
}

impl Server {
    /// Binds the listeners (port 0 picks a free port), then builds the app, which registers
    /// this node under its real rpc address.
    pub async fn bind(live: LiveConfig) -> anyhow::Result<Self> {
        let config = live.current();
        let http = bind(config.server.listen, "public").await?;
        let admin = bind(config.server.admin, "admin").await?;
        let rpc = match config.server.rpc {
            Some(addr) => Some(bind(addr, "rpc").await?),
            None => None,
        };
        let rpc_addr = rpc.as_ref().map(TcpListener::local_addr).transpose()?;
        let host = Host::start(Arc::new(live), rpc_addr.map(|a| a.to_string())).await?;
        Ok(Self {
            http_addr: http.local_addr()?,
            admin_addr: admin.local_addr()?,
            rpc_addr,
            host,
            listeners: Listeners { http, admin, rpc },
        })
    }

    /// Serves until a shutdown signal, then shuts down gracefully.
    pub async fn run(self) -> anyhow::Result<()> {
        let host = self.host;
        let config = host.config();
        crate::plugins::watch(host.lifecycle().clone())?;
        crate::config::watch::watch(host.live().clone(), host.clone())?;
        tracing::info!(
            http = %self.http_addr,
            admin = %self.admin_addr,
            rpc = %self.rpc_addr.map(|a| a.to_string()).unwrap_or_default(),
            node = %config.server.node_id,
            plugins = host.lifecycle().table().all().len(),
            "micro-api listening"
        );
        let until_stopped = || host.stopper().signal();
        // Each listener is held to limits of its own; the internal ones (admin, rpc) to the
        // same `[front]` limits as the public one. Only the rpc listener speaks TLS (with
        // `[cluster.tls]`).
        let limits = config.front;
        let metrics = host.front_metrics().clone();
        let mut servers = tokio::task::JoinSet::new();
        let gateway = host.gateway().clone();
        servers.spawn(front::serve(
            self.listeners.http,
            None,
            limits,
            metrics.clone(),
            move |r| gateway.clone().handle(r),
            until_stopped(),
        ));
        let admin_host = host.clone();
        servers.spawn(front::serve(
            self.listeners.admin,
            None,
            limits,
            metrics.clone(),
            move |r| crate::admin::handle(admin_host.clone(), r),
            until_stopped(),
        ));
        if let Some(rpc) = self.listeners.rpc {
            let listener = host.rpc_listener().clone();
            servers.spawn(front::serve(
                rpc,
                listener.tls.clone(),
                limits,
                metrics,
                move |r| crate::node::listener::handle(listener.clone(), r),
                until_stopped(),
            ));
        }

        shutdown_signal().await;
        let server = &config.server;
        // Not ready from now on, and every HTTP/1.1 answer announces the close; the node
        // leaves the shared registry, so other nodes stop calling it, while its own calls
        // still run here.
        tracing::info!("shutting down: deregistering");
        host.stopper().drain();
        host.registry().withdraw().await;
        tokio::time::sleep(Duration::from_millis(server.shutdown_grace_ms)).await;
        tracing::info!("shutting down: draining requests in flight");
        host.stopper().stop();
        let drained = tokio::time::timeout(Duration::from_millis(server.drain_timeout_ms), async {
            while let Some(done) = servers.join_next().await {
                done??;
            }
            anyhow::Ok(())
        })
        .await;
        match drained {
            Ok(result) => result?,
            Err(_) => tracing::warn!("drain timeout: closing the connections still open"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Runs the host until a shutdown signal.
pub async fn run(live: LiveConfig) -> anyhow::Result<()> {
    Server::bind(live).await?.run().await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
