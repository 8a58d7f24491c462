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
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            admin,
        } => {
            let path = config.or_else(|| {
                let default = PathBuf::from("config.toml");
                default.exists().then_some(default)
            });
            let mut config = Config::load(path.as_deref())?;
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            if let Some(admin) = admin {
                config.server.admin = admin;
            }
            micro_api::telemetry::init(&config.telemetry.log_level);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the tokio runtime")?
                .block_on(micro_api::server::run(config))
        }
    }
}
