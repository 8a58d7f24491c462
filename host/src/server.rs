//! `micro-api serve`: build the application, bind the public, admin and (with more than one
//! node) internal rpc listeners, and run until SIGINT or SIGTERM.
//!
//! Shutdown is graceful and ordered so that no accepted request fails: deregister from the
//! registry, keep serving for `shutdown_grace_ms` while other nodes notice, then stop
//! accepting and let requests in flight finish, up to `drain_timeout_ms`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::App;
use crate::config::live::LiveConfig;
use crate::front::{self, Gateway};

/// A built host with its bound listeners.
pub struct Server {
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub rpc_addr: Option<SocketAddr>,
    pub app: Arc<App>,
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
        let app = App::with_live(live, rpc_addr.map(|a| a.to_string())).await?;
        Ok(Self {
            http_addr: http.local_addr()?,
            admin_addr: admin.local_addr()?,
            rpc_addr,
            app,
            listeners: Listeners { http, admin, rpc },
        })
    }

    /// Serves until a shutdown signal, then shuts down gracefully.
    pub async fn run(self) -> anyhow::Result<()> {
        let app = self.app;
        crate::plugins::reload::watch(app.clone())?;
        crate::config::watch::watch(app.clone())?;
        tracing::info!(
            http = %self.http_addr,
            admin = %self.admin_addr,
            rpc = %self.rpc_addr.map(|a| a.to_string()).unwrap_or_default(),
            node = %app.config.server.node_id,
            plugins = app.plugins.all().len(),
            "micro-api listening"
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let mut servers = tokio::task::JoinSet::new();
        let gateway = Gateway::new(app.clone());
        servers.spawn(front::serve(
            self.listeners.http,
            move |r| gateway.clone().handle(r),
            until_stopped(),
        ));
        let admin_app = app.clone();
        servers.spawn(front::serve(
            self.listeners.admin,
            move |r| crate::admin::handle(admin_app.clone(), r),
            until_stopped(),
        ));
        if let Some(rpc) = self.listeners.rpc {
            let rpc_app = app.clone();
            servers.spawn(front::serve(
                rpc,
                move |r| crate::rpc::listener::handle(rpc_app.clone(), r),
                until_stopped(),
            ));
        }

        shutdown_signal().await;
        let server = &app.config.server;
        tracing::info!("shutting down: deregistering");
        app.registry.withdraw().await;
        tokio::time::sleep(Duration::from_millis(server.shutdown_grace_ms)).await;
        tracing::info!("shutting down: draining requests in flight");
        let _ = stop.send(true);
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
