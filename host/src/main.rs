//! The `micro-api` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use micro_api::authoring::{build, check, new};
use micro_api::config::Config;
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
    /// Create a plugin crate from a template, with the config lines that route or register it.
    New {
        /// The plugin's name (lowercase letters, digits, dashes): crate, file and plugin name.
        name: String,
        /// Which world it targets.
        #[arg(long, value_enum)]
        kind: new::Kind,
        /// The crate's folder; defaults to plugins/<name>.
        #[arg(long)]
        path: Option<PathBuf>,
        /// Append the config lines to the config file instead of printing them.
        #[arg(long)]
        register: bool,
        /// The config file --register appends to; defaults to ./config.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The SDK crate's folder (plugins/sdk of a micro-api checkout); defaults to the
        /// checkout this binary was built from.
        #[arg(long, env = "MICRO_API_SDK")]
        sdk: Option<PathBuf>,
    },
    /// Build plugin crates to components (cargo, wasm32-wasip2) and deploy them to the
    /// plugins folder, where a running host picks them up.
    Build {
        /// Crate folders, or names of crates under plugins/; defaults to the current folder.
        crates: Vec<String>,
        /// The config file whose [plugins] dir receives them; defaults to ./config.toml.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Say which world a component targets, what it imports, and whether the config grants
    /// it: the validation the host runs at load. Exits 1 when the host would refuse it.
    Check {
        /// The component file.
        file: PathBuf,
        /// The plugin name to check it as; defaults to the name the host gives the file.
        #[arg(long)]
        name: Option<String>,
        /// The config file; defaults to ./config.toml when it exists.
        #[arg(long)]
        config: Option<PathBuf>,
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

/// The config file: the one given, else ./config.toml when it exists (else the defaults).
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
            // Held to the end: dropping it flushes the spans and log lines still buffered.
            let _telemetry = micro_api::telemetry::init(
                &base.config.capabilities.telemetry,
                &base.config.server.node_id,
            )?;
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
        Command::New {
            name,
            kind,
            path,
            register,
            config,
            sdk,
        } => {
            let plugin = new::NewPlugin {
                dir: path.unwrap_or_else(|| PathBuf::from("plugins").join(&name)),
                sdk: sdk.unwrap_or_else(new::default_sdk_dir),
                kind,
                name,
            };
            let made = new::scaffold(&plugin)?;
            println!("created {}", made.dir.display());
            if register {
                let config = config.unwrap_or_else(|| PathBuf::from("config.toml"));
                new::register(&config, &plugin.name, &made.config_lines)?;
                println!("registered {} in {}", plugin.name, config.display());
            } else {
                println!(
                    "\nadd to config.toml (or run with --register):\n\n{}",
                    made.config_lines
                );
            }
            println!(
                "then: micro-api build {}   # builds and deploys it",
                made.dir.display()
            );
            Ok(())
        }
        Command::Build { crates, config } => {
            let config = Config::load(config_path(config).as_deref())?;
            let dirs = if crates.is_empty() {
                vec![PathBuf::from(".")]
            } else {
                crates
                    .iter()
                    .map(|spec| build::crate_dir(spec))
                    .collect::<Result<_, _>>()?
            };
            for dir in dirs {
                let built = build::build(&dir, &config.plugins.dir)
                    .with_context(|| format!("building {}", dir.display()))?;
                println!(
                    "deployed {} ({} bytes) to {}",
                    built.plugin,
                    built.bytes,
                    built.deployed.display()
                );
            }
            Ok(())
        }
        Command::Check { file, name, config } => {
            let config = Config::load(config_path(config).as_deref())?;
            let report = check::check(&config, &file, name.as_deref())?;
            println!("{report}");
            if !report.accepted() {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
