//! The servers a bench run measures, each a child process killed when dropped: micro-api,
//! the native baseline, `wasmtime serve` when the right one is installed (one process per
//! hello case, each with the reuse flags micro-api's config of that case has), and for the
//! rpc-hop case an etcd with a callee and a caller node; and the run folder they serve from.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::cases::http;
use super::load::Machine;
use super::{Options, json_field, on_path, version_of};
use crate::{PLUGINS, component_file, target_dir, wasm_dir};

/// Components the benchmarks load beside the seed plugins: `hello` for case 1, `probe`
/// (its `echo` method is the no-op export) for the micro-benchmarks and, behind
/// `probe-http`'s `/probe/call/probe/echo`, the callee of the rpc-hop case.
pub(super) const BENCH_COMPONENTS: &[&str] = &["hello", "probe", "probe-http"];
/// The hello cases beside case 1: the same `hello` with serial reuse, and the `wasip3`
/// crate's hello (WASI 0.3, reused by default), from `test-plugins/foreign/`.
const HELLO_CASES: &str = r#"
[[route]]
path = "/hello-reused"
methods = ["GET"]
plugin = "hello-reused"

[plugin.hello-reused]
reuse = true

[[route]]
path = "/hello-p3"
methods = ["GET"]
plugin = "wasip3-hello"
"#;
/// The routes and grants of the rpc-hop case, on every node.
const PROBE_CONFIG: &str = r#"
[[route]]
path = "/probe/{*rest}"
plugin = "probe-http"

[plugin.probe-http]
rpc = ["probe"]

[plugin.probe]
rpc = ["probe"]
sql = true
"#;
/// The shared secret of the rpc-hop nodes. Not a secret.
const CLUSTER_SECRET: &str = "bench-cluster-secret-not-a-secret";
/// The token signing key of both servers, so one token is valid on both. Not a secret.
const SIGNING_KEY: &str = "bench-signing-key-not-a-secret-0123456789abcdef";
pub(super) const MICRO_API: &str = "micro-api";
pub(super) const NATIVE: &str = "native";
pub(super) const WASMTIME: &str = "wasmtime serve";
/// `wasmtime serve` on `hello` with its reuse flags at `wasmtime serve`'s own defaults.
pub(super) const WASMTIME_REUSED: &str = "wasmtime serve, reuse";
/// `wasmtime serve` on the WASI 0.3 hello (it reuses 0.3 instances by default).
pub(super) const WASMTIME_P3: &str = "wasmtime serve, 0.3";
/// micro-api with `[telemetry] access_log = "json"`: what the access log costs.
pub(super) const MICRO_API_ACCESS_LOG: &str = "micro-api, access log";
/// The rpc-hop case's caller node, whose callee runs on another micro-api process.
pub(super) const CROSS_HOST: &str = "micro-api, remote callee";
/// The only wasmtime the `wasmtime serve` baseline is compared with: the host's own.
const WASMTIME_VERSION: &str = "48.0.8";

/// `target/bench/`: the config, the deployed components and fresh databases of this run
/// (the compile cache is kept between runs).
pub(super) fn prepare_run_dir(root: &Path) -> Result<PathBuf> {
    let run_dir = target_dir(root).join("bench");
    for fresh in ["data", "native", "plugins", "etcd", "caller", "callee"] {
        let dir = run_dir.join(fresh);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clear {}", dir.display()))?;
        }
    }
    // The config the repo ships, so the benchmark measures what `cargo xtask run` serves
    // (limits, breakers, log level, grants), plus the route of case 1. Its relative paths
    // (`data`, `plugins/dist`) land in the run folder.
    let shipped = std::fs::read_to_string(root.join("config.toml")).context("read config.toml")?;
    let config = format!(
        "{shipped}\n# Added by `cargo xtask bench`: the hello cases and the rpc hop.\n[[route]]\npath = \"/hello\"\nmethods = [\"GET\"]\nplugin = \"hello\"\n{HELLO_CASES}{PROBE_CONFIG}"
    );
    std::fs::create_dir_all(&run_dir)?;
    std::fs::write(run_dir.join("config.toml"), config)?;
    deploy(
        root,
        &run_dir.join("plugins/dist"),
        &PLUGINS
            .iter()
            .chain(BENCH_COMPONENTS)
            .chain(["wasip3-hello"].iter())
            .copied()
            .collect::<Vec<_>>(),
    )?;
    // The same `hello` under a second name, so it can have a reuse policy of its own.
    std::fs::copy(
        wasm_dir(root).join(component_file("hello")),
        run_dir
            .join("plugins/dist")
            .join(component_file("hello-reused")),
    )
    .context("deploy hello-reused")?;
    Ok(run_dir)
}

/// Copies the components `names` into the plugins folder `dist`.
fn deploy(root: &Path, dist: &Path, names: &[&str]) -> Result<()> {
    std::fs::create_dir_all(dist)?;
    for name in names {
        let file = component_file(name);
        std::fs::copy(wasm_dir(root).join(&file), dist.join(&file))
            .with_context(|| format!("deploy {file}"))?;
    }
    Ok(())
}

/// A server process; killed when dropped.
pub(super) struct Server {
    pub(super) name: &'static str,
    pub(super) addr: String,
    /// micro-api's admin listener (empty for the other servers).
    pub(super) admin: String,
    child: Child,
    output: Arc<Mutex<VecDeque<String>>>,
}

/// How to tell that a server accepts connections.
enum Ready {
    /// It prints a line containing this, with its address as `"http":"ADDR"`.
    Line(&'static str),
    /// It listens on this address.
    Connects(String),
}

impl Server {
    fn start(name: &'static str, mut command: Command, ready: Ready) -> Result<Self> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {name}"))?;
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let (lines_tx, lines_rx) = std::sync::mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            // Drained for the whole run: a full pipe would block the server.
            let (output, lines_tx) = (output.clone(), lines_tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = lines_tx.send(line.clone());
                    let mut kept = output.lock().expect("output lock");
                    if kept.len() == 40 {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            });
        }
        let mut server = Self {
            name,
            addr: String::new(),
            admin: String::new(),
            child,
            output,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while server.addr.is_empty() {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("{name} exited with {status}:\n{}", server.last_output());
            }
            if Instant::now() > deadline {
                bail!("{name} did not start:\n{}", server.last_output());
            }
            match &ready {
                Ready::Line(marker) => {
                    if let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(50))
                        && line.contains(marker)
                    {
                        server.addr = json_field(&line, "http")
                            .with_context(|| format!("no address in {line}"))?;
                        server.admin = json_field(&line, "admin").unwrap_or_default();
                    }
                }
                Ready::Connects(addr) => {
                    if TcpStream::connect(addr).is_ok() {
                        server.addr = addr.clone();
                    } else {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
        Ok(server)
    }

    pub(super) fn last_output(&self) -> String {
        let kept = self.output.lock().expect("output lock");
        kept.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits (up to 60 s) until the server has no work left: requests a previous run left
    /// in flight (64 queued logins take seconds) would otherwise land in the next run, and
    /// push micro-api past its breakers' concurrency limit.
    pub(super) fn wait_idle(&self) {
        let cpu_ticks = || {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
            // Fields after the command name, which is in parentheses: utime is the 12th.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut before = cpu_ticks();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            let now = cpu_ticks();
            // At most one tick (10 ms) of CPU in 200 ms: only timers and the epoch ticker.
            if let (Some(a), Some(b)) = (before, now)
                && b.saturating_sub(a) <= 1
            {
                return;
            }
            before = now;
        }
    }

    /// Starts a new peak-RSS measurement (`/proc/PID/clear_refs`, value 5, resets VmHWM).
    pub(super) fn reset_peak_rss(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").is_ok()
    }

    /// The peak resident set size in KiB since the last reset (or the start).
    pub(super) fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) struct Servers {
    /// The servers under load.
    list: Vec<Server>,
    /// What the rpc-hop case's caller needs (etcd, the callee node): only held, and
    /// dropped (stopped) after `list`.
    _support: Vec<Server>,
    /// Why there is no `wasmtime serve`, when there is none.
    pub(super) wasmtime_skipped: Option<String>,
    /// Why there is no cross-host rpc hop, when there is none.
    pub(super) cross_host_skipped: Option<String>,
}

impl Servers {
    pub(super) fn start(
        root: &Path,
        run_dir: &Path,
        machine: &Machine,
        options: &Options,
    ) -> Result<Self> {
        let binaries = options.binaries(root);
        let seed_host = || {
            let mut host = micro_api(machine, &binaries, run_dir, run_dir);
            host.env("MICRO_API__AUTH__SIGNING_KEY", SIGNING_KEY)
                // 64 logins queue for ~1.5 s behind argon2 on one core, past the shipped 1 s
                // breaker timeout: micro-api would rightly shed them with 503s, and the case
                // would measure that policy instead of the work. The native server has none.
                .env("MICRO_API__BREAKER__DEFAULT__TIMEOUT_MS", "30000")
                // The login case sends 64 logins of one name from one address at once; the
                // limiter would hold all but 5 of them (attempts in flight count) with 429s.
                .env("MICRO_API__LOGIN_LIMIT__MAX_FAILURES", "1000000")
                .env(
                    "MICRO_API__LOGIN_LIMIT__MAX_FAILURES_PER_ADDRESS",
                    "1000000",
                );
            host
        };
        let host = Server::start(MICRO_API, seed_host(), Ready::Line(LISTENING))?;
        let mut logged = seed_host();
        logged
            .env("MICRO_API__TELEMETRY__ACCESS_LOG", "json")
            .env("MICRO_API__DATA_DIR", run_dir.join("access-log-data"));
        let logged = Server::start(MICRO_API_ACCESS_LOG, logged, Ready::Line(LISTENING))?;
        let mut native = machine.command(&binaries.join("bench-native"), true);
        native
            .arg("--database")
            .arg(format!(
                "sqlite://{}?mode=rwc",
                run_dir.join("native/native.db").display()
            ))
            .args(["--signing-key", SIGNING_KEY]);
        let native = Server::start(NATIVE, native, Ready::Line("bench-native listening"))?;
        let mut list = vec![host, native, logged];
        let wasmtime_skipped = match on_path("wasmtime") {
            None => Some(format!(
                "`wasmtime` is not on the PATH (`cargo install wasmtime-cli@{WASMTIME_VERSION} --locked` adds it, in about 10 minutes)"
            )),
            Some(wasmtime) => {
                let version = version_of("wasmtime", &["--version"]).unwrap_or_default();
                if version.contains(WASMTIME_VERSION) {
                    for (name, component, flags) in WASMTIME_SERVERS {
                        let addr = free_addr()?;
                        let mut serve = machine.command(&wasmtime, true);
                        serve
                            .arg("serve")
                            .args(*flags)
                            .arg("--addr")
                            .arg(&addr)
                            .arg(wasm_dir(root).join(component_file(component)));
                        list.push(Server::start(name, serve, Ready::Connects(addr))?);
                    }
                    None
                } else {
                    Some(format!(
                        "the `wasmtime` on the PATH is `{version}`, not {WASMTIME_VERSION} (the host's)"
                    ))
                }
            }
        };
        let mut support = Vec::new();
        let cross_host_skipped = match on_path("etcd") {
            None => Some(
                "`etcd` is not on the PATH (Debian's `etcd-server` package adds it)".to_string(),
            ),
            Some(etcd) => {
                let (caller, callee_support) =
                    start_cross_host(root, run_dir, machine, options, &etcd)?;
                list.push(caller);
                support.extend(callee_support);
                None
            }
        };
        Ok(Self {
            list,
            _support: support,
            wasmtime_skipped,
            cross_host_skipped,
        })
    }

    pub(super) fn get(&self, name: &str) -> &Server {
        self.list
            .iter()
            .find(|s| s.name == name)
            .expect("a started server")
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.list.iter().any(|s| s.name == name)
    }
}

/// The `wasmtime serve` processes: name, component, flags. Each is configured as micro-api
/// is for the same case, so the peer is measured at its best: the pooling allocator, and
/// for the reused cases `wasmtime serve`'s reuse flags (128 requests an instance, 16 at
/// once, which micro-api's defaults copy).
const WASMTIME_SERVERS: &[(&str, &str, &[&str])] = &[
    (
        WASMTIME,
        "hello",
        &["-S", "cli", "-O", "pooling-allocator=y"],
    ),
    (
        WASMTIME_REUSED,
        "hello",
        &[
            "-S",
            "cli",
            "-O",
            "pooling-allocator=y",
            "--max-instance-reuse-count",
            "128",
        ],
    ),
    (
        WASMTIME_P3,
        "wasip3-hello",
        &[
            "-S",
            "cli,p3",
            "-W",
            "component-model-async",
            "-O",
            "pooling-allocator=y",
            "--max-instance-reuse-count",
            "128",
            "--max-instance-concurrent-reuse-count",
            "16",
        ],
    ),
];

impl Server {
    /// Samples micro-api's `/metrics` until stopped: the most reused instances of
    /// `plugin` alive at once.
    pub(super) fn sample_instances(&self, plugin: &str) -> InstanceSampler {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (admin, series) = (
            self.admin.clone(),
            format!("micro_api_instances_reused_alive{{plugin=\"{plugin}\"}} "),
        );
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = None;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((200, text)) = http(&admin, "GET", "/metrics", &[], "")
                    && let Some(alive) = text
                        .lines()
                        .find_map(|l| l.strip_prefix(&series))
                        .and_then(|n| n.trim().parse::<u64>().ok())
                {
                    peak = peak.max(Some(alive));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        });
        InstanceSampler { stop, thread }
    }
}

/// A running [`Server::sample_instances`].
pub(super) struct InstanceSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Option<u64>>,
}

impl InstanceSampler {
    pub(super) fn stop(self) -> Option<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

/// What micro-api logs once it serves, with its addresses as `"http"` and `"admin"`.
const LISTENING: &str = "micro-api listening";

/// The rpc-hop case across hosts: an etcd on loopback, a callee node serving `probe` and a
/// caller node routing `/probe/...` to `probe-http`, both registered in that etcd. Returns
/// the caller, once its callee is discoverable, and the servers it needs.
fn start_cross_host(
    root: &Path,
    run_dir: &Path,
    machine: &Machine,
    options: &Options,
    etcd: &Path,
) -> Result<(Server, Vec<Server>)> {
    let (client, peer) = (free_addr()?, free_addr()?);
    let mut command = machine.command(etcd, true);
    command
        .arg("--data-dir")
        .arg(run_dir.join("etcd"))
        .arg(format!("--listen-client-urls=http://{client}"))
        .arg(format!("--advertise-client-urls=http://{client}"))
        .arg(format!("--listen-peer-urls=http://{peer}"))
        .arg(format!("--initial-advertise-peer-urls=http://{peer}"))
        .arg(format!("--initial-cluster=default=http://{peer}"));
    let etcd = Server::start("etcd", command, Ready::Connects(client.clone()))?;
    let node = |role: &'static str, plugins: &[&str]| -> Result<Server> {
        let dir = run_dir.join(role);
        deploy(root, &dir.join("plugins"), plugins)?;
        let config = format!(
            "# Written by `cargo xtask bench` for the rpc-hop case.\ndata_dir = \"data\"\n\n[server]\nnode_id = \"bench-{role}\"\n\n[plugins]\ndir = \"plugins\"\n\n[registry]\nbackend = \"etcd\"\nendpoints = [\"http://{client}\"]\nprefix = \"/micro-api-bench\"\n{PROBE_CONFIG}"
        );
        std::fs::write(dir.join("config.toml"), config)?;
        let mut host = micro_api(machine, &options.binaries(root), &dir, run_dir);
        host.args(["--rpc", "127.0.0.1:0"])
            .env("MICRO_API__CLUSTER__SECRET", CLUSTER_SECRET);
        let name = if role == "caller" {
            CROSS_HOST
        } else {
            "callee"
        };
        Server::start(name, host, Ready::Line(LISTENING))
    };
    let callee = node("callee", &["probe"])?;
    let caller = node("caller", &["probe-http"])?;
    // Ready once the caller's registry view holds the callee (readiness checks that every
    // granted callee is findable).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http(&caller.admin, "GET", "/admin/health/ready", &[], "")?;
        if status == 200 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the rpc-hop caller never became ready: {body}\n{}",
                caller.last_output()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((caller, vec![callee, etcd]))
}

/// `micro-api serve` with the `config.toml` of `dir`, on free loopback ports, sharing the
/// run's compile cache with the other nodes.
fn micro_api(machine: &Machine, binaries: &Path, dir: &Path, run_dir: &Path) -> Command {
    let mut host = machine.command(&binaries.join("micro-api"), true);
    host.current_dir(dir)
        .args(["serve", "--config", "config.toml"])
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .env("MICRO_API__PLUGINS__CACHE_DIR", run_dir.join("cache"))
        // wrk's 64 connections all come from 127.0.0.1: past 32 requests in flight from
        // one address the front answers 429, a policy, not the work measured.
        .env("MICRO_API__FRONT__MAX_REQUESTS_PER_ADDRESS", "1000000")
        // The host pinned to one core is saturated by design: shedding would answer part of
        // the load 503 at once, again a policy. Its bookkeeping still runs on every request.
        .env("MICRO_API__FRONT__SHEDDING", "false");
    host
}

/// A loopback address no one listens on (for `wasmtime serve --addr`).
fn free_addr() -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}
