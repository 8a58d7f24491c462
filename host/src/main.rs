//! The `micro-api` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use micro_api::config::Config;

#[derive(Parser)]
#[command(
    name = "micro-api",
    version,
    about = "An API gateway that runs its services as WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP with the plugins of the plugins folder.
    Serve {
        /// The config file; defaults to ./config.toml when it exists.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Public listen address (overrides [server] listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Admin listen address (overrides [server] admin).
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// Internal rpc listen address for other nodes (overrides [server] rpc).
        #[arg(long)]
        rpc: Option<SocketAddr>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            admin,
            rpc,
        } => {
            let path = config.or_else(|| {
                let default = PathBuf::from("config.toml");
                default.exists().then_some(default)
            });
            // Flags are the last layer: applied like environment variables, so the file is
            // validated with them.
            let flags = [("LISTEN", listen), ("ADMIN", admin), ("RPC", rpc)]
                .into_iter()
                .filter_map(|(key, addr)| {
                    addr.map(|a| (format!("MICRO_API__SERVER__{key}"), a.to_string()))
                });
            let config = Config::load_with_env(path.as_deref(), std::env::vars().chain(flags))?;
            // Held to the end: dropping it flushes the spans and log lines still buffered.
            let _telemetry = micro_api::telemetry::init(&config.telemetry, &config.server.node_id)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the tokio runtime")?
                .block_on(micro_api::server::run(config))
        }
    }
}
