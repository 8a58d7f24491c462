//! The `micro-api` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use micro_api::config::live::Source;

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
    /// Read and edit the etcd layer of the config ([config_store] endpoints and prefix).
    Config {
        /// The config file naming the store; defaults to ./config.toml when it exists.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: config_cli::Action,
    },
}

mod config_cli;

/// The config file given, or ./config.toml when it exists.
fn config_path(given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| {
        let default = PathBuf::from("config.toml");
        default.exists().then_some(default)
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
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
            // Flags are the last layer below etcd: applied like environment variables, so
            // the file is validated with them.
            let flags = [("LISTEN", listen), ("ADMIN", admin), ("RPC", rpc)]
                .into_iter()
                .filter_map(|(key, addr)| {
                    addr.map(|a| (format!("MICRO_API__SERVER__{key}"), a.to_string()))
                });
            let source = Source {
                path: config_path(config),
                env: std::env::vars().chain(flags).collect(),
            };
            let base = source.load(&Default::default())?;
            micro_api::telemetry::init(&base.config.telemetry.log_level);
            runtime()?.block_on(async {
                let live = micro_api::config::watch::load_at_start(source).await?;
                micro_api::server::run(live).await
            })
        }
        Command::Config { config, action } => {
            let source = Source {
                path: config_path(config),
                env: std::env::vars().collect(),
            };
            runtime()?.block_on(config_cli::run(source, action))
        }
    }
}
