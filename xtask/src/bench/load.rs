//! The load: where `wrk` and the servers run (pinned to separate cores when possible),
//! `wrk` itself (installed when missing), and the rounds of every case and server.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::cases::Case;
use super::report::latency;
use super::servers::{MICRO_API, Servers};
use super::{Options, on_path, version_of};

pub(super) const CONNECTIONS: [u32; 2] = [64, 1];

/// `wrk` from Debian's packages (we run as root in CI and in the dev container).
pub(super) fn ensure_wrk() -> Result<()> {
    if on_path("wrk").is_some() {
        return Ok(());
    }
    println!("wrk is missing: apt-get install -y wrk");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "wrk"])
            .status()
    };
    let installed = install().is_ok_and(|s| s.success())
        || (Command::new("apt-get")
            .arg("update")
            .status()
            .is_ok_and(|s| s.success())
            && install().is_ok_and(|s| s.success()));
    if !installed || on_path("wrk").is_none() {
        bail!("cannot install wrk with apt-get; install it (Debian package `wrk`) and rerun");
    }
    Ok(())
}

/// Where the servers and the load generator run.
pub(super) struct Machine {
    pub(super) cores: usize,
    pub(super) cpu: String,
    /// `taskset -c` lists for the servers and for `wrk`, when pinning is possible.
    pub(super) pinning: Option<(String, String)>,
    pub(super) wrk: String,
}

impl Machine {
    pub(super) fn probe() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, model)| model.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let pinning = (cores >= 2 && on_path("taskset").is_some()).then(|| {
            let last = cores - 1;
            let servers = if last == 1 {
                "0".to_string()
            } else {
                format!("0-{}", last - 1)
            };
            (servers, last.to_string())
        });
        Self {
            cores,
            cpu,
            pinning,
            wrk: version_of("wrk", &["-v"])
                .map(|v| v.split(" Copyright").next().unwrap_or_default().to_string())
                .unwrap_or_else(|| "wrk".into()),
        }
    }

    /// `program`, pinned to the servers' cores (`server`) or to the load generator's.
    pub(super) fn command(&self, program: &Path, server: bool) -> Command {
        match &self.pinning {
            Some((servers, load)) => {
                let mut command = Command::new("taskset");
                command
                    .args(["-c", if server { servers } else { load }])
                    .arg(program);
                command
            }
            None => Command::new(program),
        }
    }
}

/// One wrk run.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    pub(super) requests_per_s: f64,
    pub(super) p50_us: f64,
    pub(super) p99_us: f64,
    pub(super) errors: u64,
    pub(super) peak_rss_kib: Option<u64>,
    /// The most reused instances of the case's plugin alive at once during the run.
    pub(super) peak_instances: Option<u64>,
}

/// Samples per (case, connections, server).
pub(super) type Results = BTreeMap<(usize, u32, &'static str), Vec<Sample>>;

pub(super) fn measure(
    servers: &Servers,
    cases: &[Case],
    options: &Options,
    machine: &Machine,
    run_dir: &Path,
) -> Result<Results> {
    let mut results = Results::new();
    let mut token = None;
    // Case by case, so that a case's memory never shows in an earlier one's peak RSS.
    for (i, case) in cases.iter().enumerate() {
        if case.authorized && token.is_none() {
            token = Some(servers.check_logins()?);
        }
        let script = run_dir.join(format!("case{i}.lua"));
        std::fs::write(&script, case.script(token.as_deref()))?;
        if let Some(warmup) = options.warmup {
            for name in &case.servers {
                let server = servers.get(name);
                server.wait_idle();
                wrk(
                    machine,
                    &server.url(case.path),
                    &script,
                    CONNECTIONS[0],
                    warmup,
                )?;
            }
        }
        for round in 0..options.rounds {
            for connections in CONNECTIONS {
                // Alternate who goes first, so neither always runs on a warmer machine.
                let mut order = case.servers.clone();
                let first = round % order.len();
                order.rotate_left(first);
                for name in order {
                    let server = servers.get(name);
                    server.wait_idle();
                    let reset = server.reset_peak_rss();
                    let sampler = case
                        .instances_of
                        .filter(|_| name == MICRO_API)
                        .map(|plugin| server.sample_instances(plugin));
                    let mut sample = wrk(
                        machine,
                        &server.url(case.path),
                        &script,
                        connections,
                        options.duration,
                    )?;
                    sample.peak_rss_kib = server.peak_rss_kib().filter(|_| reset);
                    sample.peak_instances = sampler.and_then(|s| s.stop());
                    eprintln!(
                        "round {}/{} {:<11} c{connections:<2} {name:<14} {:>9.1} req/s  p50 {:>9}  p99 {:>9}{}",
                        round + 1,
                        options.rounds,
                        case.name,
                        sample.requests_per_s,
                        latency(sample.p50_us),
                        latency(sample.p99_us),
                        if sample.errors > 0 {
                            format!("  {} errors", sample.errors)
                        } else {
                            String::new()
                        }
                    );
                    results
                        .entry((i, connections, name))
                        .or_default()
                        .push(sample);
                }
            }
        }
    }
    Ok(results)
}

fn wrk(
    machine: &Machine,
    url: &str,
    script: &Path,
    connections: u32,
    duration: Duration,
) -> Result<Sample> {
    let output = machine
        .command(Path::new("wrk"), false)
        .args(["-t1", &format!("-c{connections}")])
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        // Logins queue behind argon2 at 64 connections: seconds, not wrk's default 2 s.
        .args(["--timeout", "30s", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .context("run wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let numbers: Vec<f64> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [
        requests,
        duration_us,
        p50,
        p99,
        status_errors,
        socket_errors,
    ] = numbers[..]
    else {
        bail!(
            "wrk {url} failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    };
    Ok(Sample {
        requests_per_s: requests / (duration_us / 1e6),
        p50_us: p50,
        p99_us: p99,
        errors: (status_errors + socket_errors) as u64,
        peak_rss_kib: None,
        peak_instances: None,
    })
}
