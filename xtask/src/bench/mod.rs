//! `cargo xtask bench [--short] [--rounds N] [--duration SECS] [--no-micro]`: micro-api
//! measured against its baselines on this machine, in one run (issue 4).
//!
//! It builds the release host, the native baseline (`bench/`) and the components, starts
//! micro-api (with the repo's `config.toml`, plus a `/hello` route) and `bench-native` on
//! loopback, plus `wasmtime serve` when `wasmtime` is on the PATH, and drives them with `wrk`
//! (installed from Debian's packages when missing). With two cores or more, `wrk` is pinned
//! to the last core and the servers to the others. Each case runs at 64 connections and at
//! 1, in rounds that alternate which server goes first; the table shows the medians over
//! rounds, the ratio to the case's baseline (native Rust, or for the rpc hop micro-api's
//! in-process hop) and each server's peak RSS, then the issue's targets.
//! The rpc-hop case needs Debian's `etcd` on the PATH: it starts one on loopback and two
//! more micro-api nodes (caller and callee) registered in it; without `etcd` it is skipped
//! and the run says why.
//! Then the criterion micro-benchmarks of `host/benches/` run, and their medians are listed.
//!
//! `--short` (for CI) is one 2-second round per case and a quick criterion pass, all on the
//! debug builds `cargo xtask test` already made (a release build of wasmtime would cost CI
//! ten minutes): it proves the harness still works, its numbers are not worth quoting.
//!
//! The parts: `servers.rs` starts what is measured, `cases.rs` holds the requests and checks
//! each server answers them alike, `load.rs` drives `wrk`, `report.rs` prints the table and
//! the targets, `criterion.rs` runs the micro-benchmarks.

mod cases;
mod criterion;
mod load;
mod report;
mod servers;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{PLUGINS, build_wasm, cargo, target_dir};
use load::Machine;
use servers::{BENCH_COMPONENTS, Servers};

struct Options {
    short: bool,
    rounds: usize,
    duration: Duration,
    /// Load before the first round of each server and case (none in short mode).
    warmup: Option<Duration>,
    micro: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self {
            short: false,
            rounds: 5,
            duration: Duration::from_secs(5),
            warmup: Some(Duration::from_secs(1)),
            micro: true,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .with_context(|| format!("{name} needs a value"))
                    .cloned()
            };
            match arg.as_str() {
                "--short" => {
                    options.short = true;
                    options.rounds = 1;
                    options.duration = Duration::from_secs(2);
                    options.warmup = None;
                }
                "--rounds" => options.rounds = value("--rounds")?.parse()?,
                "--duration" => {
                    options.duration = Duration::from_secs(value("--duration")?.parse()?)
                }
                "--no-micro" => options.micro = false,
                other => bail!(
                    "unknown bench option {other}; use [--short] [--rounds N] [--duration SECS] [--no-micro]"
                ),
            }
        }
        if options.rounds == 0 || options.duration.is_zero() {
            bail!("--rounds and --duration must be at least 1");
        }
        Ok(options)
    }

    /// The cargo profile of the servers and benches, as cargo arguments.
    fn profile_args(&self) -> Vec<String> {
        let profile = if self.short { "dev" } else { "release" };
        vec!["--profile".into(), profile.into()]
    }

    /// Where that profile's binaries are, under the target dir.
    fn binaries(&self, root: &Path) -> PathBuf {
        target_dir(root).join(if self.short { "debug" } else { "release" })
    }
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    build(root, &options)?;
    load::ensure_wrk()?;
    let started = Instant::now();
    let machine = Machine::probe();
    let run_dir = servers::prepare_run_dir(root)?;
    let servers = Servers::start(root, &run_dir, &machine, &options)?;
    let cases = servers.cases();
    for case in &cases {
        if let Some(expected) = case.expected {
            servers.check_answers(case, expected)?;
        }
    }
    let load_before = report::load_average();
    let results = load::measure(&servers, &cases, &options, &machine, &run_dir)?;
    let load = format!(
        "load average {load_before} before, {} after",
        report::load_average()
    );
    let wasmtime_skipped = servers.wasmtime_skipped.clone();
    let cross_host_skipped = servers.cross_host_skipped.clone();
    drop(servers);
    report::print_report(
        &machine,
        &options,
        &cases,
        &results,
        wasmtime_skipped.as_deref(),
        cross_host_skipped.as_deref(),
        &load,
    );
    println!(
        "\nload benchmarks: {:.0} s of wall time after the build",
        started.elapsed().as_secs_f64()
    );
    if options.micro {
        let started = Instant::now();
        criterion::micro_benchmarks(root, &options)?;
        println!(
            "micro-benchmarks: {:.0} s of wall time after the build",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The host, the native baseline, the components (and the criterion benches).
fn build(root: &Path, options: &Options) -> Result<()> {
    let profile = options.profile_args();
    cargo(
        &["build", "--package", "micro-api", "--package", "bench"],
        &profile,
        &[],
    )?;
    build_wasm(PLUGINS.iter().chain(BENCH_COMPONENTS))?;
    crate::foreign::build(root)?;
    if options.micro {
        cargo(
            &["bench", "--package", "micro-api", "--bench", "invocation"],
            &[profile, vec!["--no-run".into()]].concat(),
            &[],
        )?;
    }
    Ok(())
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// A version line from `program args`, from stdout or stderr (`wrk -v` exits with 1).
fn version_of(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    let text = [output.stdout, output.stderr].concat();
    let text = String::from_utf8_lossy(&text);
    text.lines().next().map(|l| l.trim().to_string())
}

/// The string value of `"key":"..."` in a one-line JSON object (enough for log lines).
fn json_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = line[start..].find('"')?;
    Some(line[start..start + end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_fields() {
        let line = r#"{"message":"micro-api listening","http":"127.0.0.1:4000","admin":"x"}"#;
        assert_eq!(json_field(line, "http").as_deref(), Some("127.0.0.1:4000"));
    }
}
