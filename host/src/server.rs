//! `micro-api serve`: build the application, bind the public and admin listeners, and run
//! until SIGINT or SIGTERM, then drain the requests in flight.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::app::App;
use crate::config::Config;
use crate::front::{self, Gateway};

/// A running host: its bound addresses and the task serving it.
pub struct Server {
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub app: Arc<App>,
}

impl Server {
    /// Builds the app and binds both listeners (port 0 picks a free port).
    pub async fn bind(config: Config) -> anyhow::Result<(Self, TcpListener, TcpListener)> {
        let http = TcpListener::bind(config.server.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.server.listen))?;
        let admin = TcpListener::bind(config.server.admin).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {} (admin): {e}", config.server.admin)
        })?;
        let app = App::new(config).await?;
        let server = Self {
            http_addr: http.local_addr()?,
            admin_addr: admin.local_addr()?,
            app,
        };
        Ok((server, http, admin))
    }
}

/// Runs the host until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let (server, http, admin) = Server::bind(config).await?;
    crate::plugins::reload::watch(server.app.clone())?;
    tracing::info!(
        http = %server.http_addr,
        admin = %server.admin_addr,
        plugins = server.app.plugins.all().len(),
        "micro-api listening"
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let gateway = Gateway::new(server.app.clone());
    let front = front::serve(http, move |r| gateway.clone().handle(r), wait());
    let app = server.app.clone();
    let admin = front::serve(admin, move |r| crate::admin::handle(app.clone(), r), wait());
    let signal = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining requests in flight");
        let _ = stop.send(true);
    };
    let (front, admin, ()) = tokio::join!(front, admin, signal);
    front?;
    admin?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
