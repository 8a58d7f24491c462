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

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};

use super::{PLUGINS, build_wasm, cargo, component_file, wasm_dir};

/// Components the benchmarks load beside the seed plugins: `hello` for case 1, `probe`
/// (its `echo` method is the no-op export) for the micro-benchmarks and, behind
/// `probe-http`'s `/probe/call/probe/echo`, the callee of the rpc-hop case.
const BENCH_COMPONENTS: &[&str] = &["hello", "probe", "probe-http"];
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
/// The login's content type.
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
/// The rpc hop's content type.
const JSON: (&str, &str) = ("Content-Type", "application/json");
/// The seed user's credentials (`host/migrations/`).
const LOGIN_FORM: &str = "userName=micro&pwd=123";
/// The answer `/user/profile` must give for the seed user, on every server.
const PROFILE: &str = r#"{"id":10001,"name":"micro"}"#;
const CONNECTIONS: [u32; 2] = [64, 1];
const MICRO_API: &str = "micro-api";
const NATIVE: &str = "native";
const WASMTIME: &str = "wasmtime serve";
/// The rpc-hop case's caller node, whose callee runs on another micro-api process.
const CROSS_HOST: &str = "micro-api, remote callee";
/// The only wasmtime the `wasmtime serve` baseline is compared with: the host's own.
const WASMTIME_VERSION: &str = "48.0.8";

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
    build(&options)?;
    ensure_wrk()?;
    let started = Instant::now();
    let machine = Machine::probe();
    let run_dir = prepare_run_dir(root)?;
    let servers = Servers::start(root, &run_dir, &machine, &options)?;
    let cases = servers.cases();
    for case in &cases {
        if let Some(expected) = case.expected {
            servers.check_answers(case, expected)?;
        }
    }
    let load_before = load_average();
    let results = measure(&servers, &cases, &options, &machine, &run_dir)?;
    let load = format!(
        "load average {load_before} before, {} after",
        load_average()
    );
    let wasmtime_skipped = servers.wasmtime_skipped.clone();
    let cross_host_skipped = servers.cross_host_skipped.clone();
    drop(servers);
    print_report(
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
        micro_benchmarks(root, &options)?;
        println!(
            "micro-benchmarks: {:.0} s of wall time after the build",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The host, the native baseline, the components (and the criterion benches).
fn build(options: &Options) -> Result<()> {
    let profile = options.profile_args();
    cargo(
        &["build", "--package", "micro-api", "--package", "bench"],
        &profile,
        &[],
    )?;
    build_wasm(PLUGINS.iter().chain(BENCH_COMPONENTS))?;
    if options.micro {
        cargo(
            &["bench", "--package", "micro-api", "--bench", "invocation"],
            &[profile, vec!["--no-run".into()]].concat(),
            &[],
        )?;
    }
    Ok(())
}

/// `wrk` from Debian's packages (we run as root in CI and in the dev container).
fn ensure_wrk() -> Result<()> {
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

/// Where the servers and the load generator run.
struct Machine {
    cores: usize,
    cpu: String,
    /// `taskset -c` lists for the servers and for `wrk`, when pinning is possible.
    pinning: Option<(String, String)>,
    wrk: String,
}

impl Machine {
    fn probe() -> Self {
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
    fn command(&self, program: &Path, server: bool) -> Command {
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

/// `target/bench/`: the config, the deployed components and fresh databases of this run
/// (the compile cache is kept between runs).
fn prepare_run_dir(root: &Path) -> Result<PathBuf> {
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
        "{shipped}\n# Added by `cargo xtask bench`: cases 1 and 4.\n[[route]]\npath = \"/hello\"\nmethods = [\"GET\"]\nplugin = \"hello\"\n{PROBE_CONFIG}"
    );
    std::fs::create_dir_all(&run_dir)?;
    std::fs::write(run_dir.join("config.toml"), config)?;
    deploy(
        root,
        &run_dir.join("plugins/dist"),
        &PLUGINS
            .iter()
            .chain(&["hello", "probe", "probe-http"])
            .copied()
            .collect::<Vec<_>>(),
    )?;
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

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// A server process; killed when dropped.
struct Server {
    name: &'static str,
    addr: String,
    /// micro-api's admin listener (empty for the other servers).
    admin: String,
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

    fn last_output(&self) -> String {
        let kept = self.output.lock().expect("output lock");
        kept.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits (up to 60 s) until the server has no work left: requests a previous run left
    /// in flight (64 queued logins take seconds) would otherwise land in the next run, and
    /// push micro-api past its breakers' concurrency limit.
    fn wait_idle(&self) {
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
    fn reset_peak_rss(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").is_ok()
    }

    /// The peak resident set size in KiB since the last reset (or the start).
    fn peak_rss_kib(&self) -> Option<u64> {
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

/// The string value of `"key":"..."` in a one-line JSON object (enough for log lines).
fn json_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = line[start..].find('"')?;
    Some(line[start..start + end].to_string())
}

struct Servers {
    /// The servers under load.
    list: Vec<Server>,
    /// What the rpc-hop case's caller needs (etcd, the callee node): only held, and
    /// dropped (stopped) after `list`.
    _support: Vec<Server>,
    /// Why there is no `wasmtime serve`, when there is none.
    wasmtime_skipped: Option<String>,
    /// Why there is no cross-host rpc hop, when there is none.
    cross_host_skipped: Option<String>,
}

impl Servers {
    fn start(root: &Path, run_dir: &Path, machine: &Machine, options: &Options) -> Result<Self> {
        let binaries = options.binaries(root);
        let mut host = machine.command(&binaries.join("micro-api"), true);
        host.current_dir(run_dir)
            .args(["serve", "--config", "config.toml"])
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .env("MICRO_API__AUTH__SIGNING_KEY", SIGNING_KEY)
            // 64 logins queue for ~1.5 s behind argon2 on one core, past the shipped 1 s
            // breaker timeout: micro-api would rightly shed them with 503s, and the case
            // would measure that policy instead of the work. The native server has none.
            .env("MICRO_API__BREAKER__DEFAULT__TIMEOUT_MS", "30000")
            .env("MICRO_API__PLUGINS__CACHE_DIR", run_dir.join("cache"));
        let host = Server::start(MICRO_API, host, Ready::Line(LISTENING))?;
        let mut native = machine.command(&binaries.join("bench-native"), true);
        native
            .arg("--database")
            .arg(format!(
                "sqlite://{}?mode=rwc",
                run_dir.join("native/native.db").display()
            ))
            .args(["--signing-key", SIGNING_KEY]);
        let native = Server::start(NATIVE, native, Ready::Line("bench-native listening"))?;
        let mut list = vec![host, native];
        let wasmtime_skipped = match on_path("wasmtime") {
            None => Some(format!(
                "`wasmtime` is not on the PATH (`cargo install wasmtime-cli@{WASMTIME_VERSION} --locked` adds it, in about 10 minutes)"
            )),
            Some(wasmtime) => {
                let version = version_of("wasmtime", &["--version"]).unwrap_or_default();
                if version.contains(WASMTIME_VERSION) {
                    let addr = free_addr()?;
                    let mut serve = machine.command(&wasmtime, true);
                    serve
                        .args(["serve", "-S", "cli", "-O", "pooling-allocator=y", "--addr"])
                        .arg(&addr)
                        .arg(wasm_dir(root).join(component_file("hello")));
                    list.push(Server::start(WASMTIME, serve, Ready::Connects(addr))?);
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

    fn get(&self, name: &str) -> &Server {
        self.list
            .iter()
            .find(|s| s.name == name)
            .expect("a started server")
    }

    fn has(&self, name: &str) -> bool {
        self.list.iter().any(|s| s.name == name)
    }

    /// Checks that every server of `case` (one without a token) answers it 200 `expected`.
    fn check_answers(&self, case: &Case, expected: &str) -> Result<()> {
        for name in &case.servers {
            let server = self.get(name);
            let headers: Vec<_> = case.content_type.into_iter().collect();
            let (status, body) = http(&server.addr, case.method, case.path, &headers, case.body)?;
            if (status, body.as_str()) != (200, expected) {
                bail!(
                    "{}: {} {} answered {status} {body:?}\n{}",
                    server.name,
                    case.method,
                    case.path,
                    server.last_output()
                );
            }
        }
        Ok(())
    }

    /// Checks that micro-api and native log the seed user in and read tokens alike, and
    /// returns a token (from micro-api's login: both servers share the signing key).
    fn check_logins(&self) -> Result<String> {
        let mut token = String::new();
        for name in [MICRO_API, NATIVE] {
            let addr = &self.get(name).addr;
            let (status, body) = http(addr, "POST", "/user/login", &[FORM], LOGIN_FORM)?;
            if status != 200 || !body.contains(r#""user":{"id":10001,"name":"micro"}"#) {
                bail!("{name}: POST /user/login answered {status} {body}");
            }
            if name == MICRO_API {
                token = json_field(&body, "token").context("no token in the login answer")?;
            }
        }
        for name in [MICRO_API, NATIVE] {
            let addr = &self.get(name).addr;
            let bearer = format!("Bearer {token}");
            let (status, body) = http(
                addr,
                "GET",
                "/user/profile",
                &[("Authorization", &bearer)],
                "",
            )?;
            if (status, body.as_str()) != (200, PROFILE) {
                bail!("{name}: GET /user/profile answered {status} {body}");
            }
            let nope = [("Authorization", "Bearer nope")];
            let (status, _) = http(addr, "GET", "/user/profile", &nope, "")?;
            if status != 401 {
                bail!("{name}: GET /user/profile with a bad token answered {status}, not 401");
            }
        }
        Ok(token)
    }

    /// The cases, lightest first: a login leaves its 19 MiB argon2 buffer in the server's
    /// memory, which would show in the peak RSS of any case measured after it.
    fn cases(&self) -> Vec<Case> {
        let wasm = if self.has(WASMTIME) {
            vec![MICRO_API, NATIVE, WASMTIME]
        } else {
            vec![MICRO_API, NATIVE]
        };
        let mut cases = vec![
            Case {
                name: "hello",
                method: "GET",
                path: "/hello",
                authorized: false,
                content_type: None,
                body: "",
                expected: Some("hello"),
                servers: wasm,
                baseline: NATIVE,
            },
            Case {
                name: "token check",
                method: "GET",
                path: "/user/profile",
                authorized: true,
                content_type: None,
                body: "",
                expected: None,
                servers: vec![MICRO_API, NATIVE],
                baseline: NATIVE,
            },
        ];
        if self.has(CROSS_HOST) {
            cases.push(Case {
                name: "rpc hop",
                method: "POST",
                path: "/probe/call/probe/echo",
                authorized: false,
                content_type: Some(JSON),
                body: "{}",
                expected: Some("{}"),
                servers: vec![MICRO_API, CROSS_HOST],
                baseline: MICRO_API,
            });
        }
        cases.push(Case {
            name: "login",
            method: "POST",
            path: "/user/login",
            authorized: false,
            content_type: Some(FORM),
            body: LOGIN_FORM,
            expected: None,
            servers: vec![MICRO_API, NATIVE],
            baseline: NATIVE,
        });
        cases
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
        let mut host = machine.command(&options.binaries(root).join("micro-api"), true);
        host.current_dir(&dir)
            .args(["serve", "--config", "config.toml"])
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(["--rpc", "127.0.0.1:0"])
            .env("MICRO_API__CLUSTER__SECRET", CLUSTER_SECRET)
            .env("MICRO_API__PLUGINS__CACHE_DIR", run_dir.join("cache"));
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

/// A loopback address no one listens on (for `wasmtime serve --addr`).
fn free_addr() -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

/// One HTTP/1.0 exchange (so the answer is delimited by the close): status and body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{method} {path}: not an HTTP answer: {answer:?}"))?;
    Ok((status, body.to_string()))
}

/// A benchmark case: one request, sent to each of `servers`.
struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    /// Sent with `Authorization: Bearer <token>`.
    authorized: bool,
    content_type: Option<(&'static str, &'static str)>,
    body: &'static str,
    /// The answer every server must give before the load starts, when it is fixed.
    expected: Option<&'static str>,
    servers: Vec<&'static str>,
    /// The server the others' throughput is divided by.
    baseline: &'static str,
}

impl Case {
    /// The wrk script: the request, and a `done` hook that prints the exact numbers.
    fn script(&self, token: Option<&str>) -> String {
        let mut lua = format!(
            "-- Generated by `cargo xtask bench` for the case {:?}.\nwrk.method = {:?}\nwrk.body = {:?}\n",
            self.name, self.method, self.body
        );
        if let Some((name, value)) = self.content_type {
            lua.push_str(&format!("wrk.headers[{name:?}] = {value:?}\n"));
        }
        if let Some(token) = token.filter(|_| self.authorized) {
            lua.push_str(&format!(
                "wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"
            ));
        }
        lua.push_str(
            r#"done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
"#,
        );
        lua
    }
}

/// One wrk run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    requests_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    peak_rss_kib: Option<u64>,
}

/// Samples per (case, connections, server).
type Results = BTreeMap<(usize, u32, &'static str), Vec<Sample>>;

fn measure(
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
                    let mut sample = wrk(
                        machine,
                        &server.url(case.path),
                        &script,
                        connections,
                        options.duration,
                    )?;
                    sample.peak_rss_kib = server.peak_rss_kib().filter(|_| reset);
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
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// The medians of one (case, connections, server).
struct Summary {
    requests_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    peak_rss_kib: Option<u64>,
}

fn summarize(samples: &[Sample]) -> Summary {
    Summary {
        requests_per_s: median(samples.iter().map(|s| s.requests_per_s).collect()),
        p50_us: median(samples.iter().map(|s| s.p50_us).collect()),
        p99_us: median(samples.iter().map(|s| s.p99_us).collect()),
        errors: samples.iter().map(|s| s.errors).sum(),
        peak_rss_kib: samples.iter().filter_map(|s| s.peak_rss_kib).max(),
    }
}

fn latency(us: f64) -> String {
    if us < 1.0 {
        format!("{:.0} ns", us * 1e3)
    } else if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn rate(per_s: f64) -> String {
    if per_s < 1_000.0 {
        format!("{per_s:.1}")
    } else {
        format!("{per_s:.0}")
    }
}

fn print_report(
    machine: &Machine,
    options: &Options,
    cases: &[Case],
    results: &Results,
    wasmtime_skipped: Option<&str>,
    cross_host_skipped: Option<&str>,
    load: &str,
) {
    println!(
        "\n## micro-api vs native{}\n",
        if cases[0].servers.contains(&WASMTIME) {
            " vs wasmtime serve"
        } else {
            ""
        }
    );
    println!(
        "{} cores ({}), {}, {load}; {}; {} round(s) of {} s per case and server, {}; medians over rounds; peak RSS is the server's VmHWM during the case (reset through /proc/PID/clear_refs before each run).{}\n",
        machine.cores,
        machine.cpu,
        today(),
        machine.wrk,
        options.rounds,
        options.duration.as_secs(),
        match &machine.pinning {
            Some((servers, load)) => format!("servers on core {servers}, wrk on core {load}"),
            None => "nothing pinned".into(),
        },
        if options.short {
            " SHORT MODE: a smoke test, not a measurement."
        } else {
            ""
        }
    );
    println!(
        "| case | conns | server | req/s | p50 | p99 | req/s vs baseline | peak RSS | errors |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|");
    let summary = |case: usize, connections: u32, name: &str| {
        results
            .iter()
            .find(|((c, n, s), _)| *c == case && *n == connections && *s == name)
            .map(|(_, samples)| summarize(samples))
    };
    for (i, case) in cases.iter().enumerate() {
        for connections in CONNECTIONS {
            let baseline =
                summary(i, connections, case.baseline).map_or(f64::NAN, |s| s.requests_per_s);
            for name in &case.servers {
                let Some(s) = summary(i, connections, name) else {
                    continue;
                };
                println!(
                    "| {} | {connections} | {name} | {} | {} | {} | {:.2}x | {} | {} |",
                    case.name,
                    rate(s.requests_per_s),
                    latency(s.p50_us),
                    latency(s.p99_us),
                    s.requests_per_s / baseline,
                    s.peak_rss_kib.map_or("n/a".into(), |kib| format!(
                        "{:.1} MiB",
                        kib as f64 / 1024.0
                    )),
                    s.errors,
                );
            }
        }
    }
    // The issue's targets, on the 64-connection throughput; a run with errors proves nothing.
    let ratio = |case: usize, of: &str, to: &str, target: f64| {
        let (a, b) = (
            summary(case, CONNECTIONS[0], of)?,
            summary(case, CONNECTIONS[0], to)?,
        );
        let ratio = a.requests_per_s / b.requests_per_s;
        Some(if a.errors + b.errors > 0 {
            format!("{ratio:.2}x (target >= {target}x: NOT MEASURED, the run had errors)")
        } else if ratio >= target {
            format!("{ratio:.2}x (target >= {target}x: met)")
        } else {
            format!("{ratio:.2}x (target >= {target}x: MISSED)")
        })
    };
    println!("\nTargets (req/s at 64 connections):");
    for (i, case) in cases.iter().enumerate() {
        let target = if case.name == "login" { 0.9 } else { 0.5 };
        if let Some(verdict) = ratio(i, MICRO_API, NATIVE, target) {
            println!("- {}: micro-api / native = {verdict}", case.name);
        }
    }
    match ratio(0, MICRO_API, WASMTIME, 3.0) {
        Some(verdict) => println!("- hello: micro-api / wasmtime serve = {verdict}"),
        None => println!(
            "- hello vs wasmtime serve: skipped, {}",
            wasmtime_skipped.unwrap_or("it did not run")
        ),
    }
    // What the slower path adds to one request, at one connection.
    let added = |name: &str, of: &str, to: &str| {
        let case = cases.iter().position(|c| c.name == name)?;
        let (slow, fast) = (summary(case, 1, of)?, summary(case, 1, to)?);
        let added = slow.p50_us - fast.p50_us;
        Some(format!(
            "{}{} ({} vs {})",
            latency(added.abs()),
            if added >= 0.0 { " longer" } else { " shorter" },
            latency(slow.p50_us),
            latency(fast.p50_us)
        ))
    };
    if let Some(added) = added("login", MICRO_API, NATIVE) {
        println!("- login at 1 connection: micro-api's median is {added} than native's");
    }
    match cases.iter().position(|c| c.name == "rpc hop") {
        Some(hop) => {
            if let Some(s) = summary(hop, CONNECTIONS[0], CROSS_HOST)
                && let Some(local) = summary(hop, CONNECTIONS[0], MICRO_API)
            {
                println!(
                    "- rpc hop: cross-host / in-process = {:.2}x req/s at 64 connections (no target: the price of the network hop)",
                    s.requests_per_s / local.requests_per_s
                );
            }
            if let Some(added) = added("rpc hop", CROSS_HOST, MICRO_API) {
                println!(
                    "- rpc hop at 1 connection: the cross-host request's median is {added} than the in-process one's"
                );
            }
        }
        None => println!(
            "- rpc hop across hosts: skipped, {}",
            cross_host_skipped.unwrap_or("it did not run")
        ),
    }
}

/// The 1-minute load average: other work on the machine skews every number.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// `YYYY-MM-DD HH:MM UTC`, from the system clock (days to civil date, H. Hinnant's method).
fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs % 86_400 / 3_600,
        secs % 3_600 / 60
    )
}

/// Runs the criterion benches of `host/benches/` and lists their medians.
fn micro_benchmarks(root: &Path, options: &Options) -> Result<()> {
    let started = SystemTime::now();
    let quick = [
        "--warm-up-time",
        "0.2",
        "--measurement-time",
        "0.5",
        "--sample-size",
        "10",
    ];
    let mut extra = options.profile_args();
    extra.push("--".into());
    if options.short {
        extra.extend(quick.iter().map(|s| s.to_string()));
    }
    let components = wasm_dir(root);
    cargo(
        &["bench", "--package", "micro-api", "--bench", "invocation"],
        &extra,
        &[("MICRO_API_TEST_COMPONENTS", components.as_os_str())],
    )?;
    let mut medians = Vec::new();
    collect_medians(&target_dir(root).join("criterion"), started, &mut medians)?;
    medians.sort_by(|a, b| a.0.cmp(&b.0));
    println!("\n## Micro-benchmarks (criterion medians)\n");
    println!("| benchmark | median |\n|---|---:|");
    for (id, ns) in medians {
        println!("| {id} | {} |", latency(ns / 1e3));
    }
    Ok(())
}

/// `(group/function, median ns)` of every criterion estimate written since `since`.
fn collect_medians(dir: &Path, since: SystemTime, out: &mut Vec<(String, f64)>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let estimates = path.join("new/estimates.json");
        if estimates.is_file() {
            let fresh = std::fs::metadata(&estimates)?.modified()? >= since;
            let text = std::fs::read_to_string(&estimates)?;
            let benchmark = std::fs::read_to_string(path.join("new/benchmark.json")).ok();
            if let (true, Some(median), Some(id)) = (
                fresh,
                median_ns(&text),
                benchmark.and_then(|b| json_field(&b, "full_id")),
            ) {
                out.push((id, median));
            }
        } else if path.is_dir() {
            collect_medians(&path, since, out)?;
        }
    }
    Ok(())
}

/// The median's point estimate in criterion's `estimates.json`.
fn median_ns(estimates: &str) -> Option<f64> {
    let median = &estimates[estimates.find("\"median\"")?..];
    let value = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_fields_and_medians() {
        let line = r#"{"message":"micro-api listening","http":"127.0.0.1:4000","admin":"x"}"#;
        assert_eq!(json_field(line, "http").as_deref(), Some("127.0.0.1:4000"));
        let estimates = r#"{"mean":{"point_estimate":9.0},"median":{"confidence_interval":{"lower_bound":1.0},"point_estimate":1234.5,"standard_error":2.0}}"#;
        assert_eq!(median_ns(estimates), Some(1234.5));
    }

    #[test]
    fn formats_latencies_and_medians() {
        assert_eq!(latency(0.0149), "15 ns");
        assert_eq!(latency(173.0), "173 µs");
        assert_eq!(latency(1_520.0), "1.52 ms");
        assert_eq!(latency(2_500_000.0), "2.50 s");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
