//! The integration-test harness: real `micro-api` processes, real components built from the
//! repo (by `cargo xtask test`), real HTTP, real databases.
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where `cargo xtask test` put the components.
pub fn components_dir() -> PathBuf {
    std::env::var_os("MICRO_API_TEST_COMPONENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/plugin")
        })
}

/// The component of crate `name` (`user-api` -> `user_api.wasm`).
pub fn component(name: &str) -> PathBuf {
    let path = components_dir().join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo xtask test`, which builds the components",
        path.display()
    );
    path
}

/// A compile cache shared by every test process, so each component compiles once per run.
fn shared_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-compile-cache")
}

/// The seed's plugins with their grants and route, as `config.toml` ships them.
pub const SEED_CONFIG: &str = r#"
[[route]]
path = "/user/login"
methods = ["POST"]
plugin = "user-api"

[plugin.user-api]
rpc = ["user", "auth"]
publish = ["user.login"]

[plugin.user]
sql = true
crypto = true

[plugin.auth]
crypto = true
"#;

/// probe-http routed under /probe, granted rpc to probe; probe granted rpc to itself.
pub const PROBES: &str = r#"
[[route]]
path = "/probe/{*rest}"
plugin = "probe-http"

[plugin.probe-http]
rpc = ["probe"]
limits = { deadline_ms = 10000 }

[plugin.probe]
rpc = ["probe"]
sql = true
config = { greeting = "hello" }
"#;

/// probe-http routed under /probe and granted rpc to `services`, so that
/// `POST /probe/call/{service}/{method}` calls them.
pub fn probe_calling(services: &[&str]) -> String {
    format!(
        "[[route]]\npath = \"/probe/{{*rest}}\"\nplugin = \"probe-http\"\n\n[plugin.probe-http]\nrpc = {services:?}\n"
    )
}

pub const SEED_PLUGINS: &[&str] = &["auth", "user", "user-api"];

/// A signing key the tests know, to verify tokens independently of the host.
pub const TEST_SIGNING_KEY: &str = "test-signing-key-0123456789abcdef0123456789";

pub struct HostBuilder {
    plugins: Vec<String>,
    config: String,
    database_url: Option<String>,
    env: Vec<(String, String)>,
    cache_dir: Option<PathBuf>,
    admin_token: Option<String>,
}

impl HostBuilder {
    pub fn new() -> Self {
        Self {
            plugins: Vec::new(),
            config: String::new(),
            database_url: None,
            env: Vec::new(),
            cache_dir: None,
            admin_token: None,
        }
    }

    /// Sets `[admin] token` (through the environment, as production would); the harness's
    /// admin requests then send it. Without it the admin listener asks for no token.
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.into());
        self.env("MICRO_API__ADMIN__TOKEN", token)
    }

    /// A compile cache of this test's own instead of the shared one.
    pub fn cache_dir(mut self, dir: &Path) -> Self {
        self.cache_dir = Some(dir.to_path_buf());
        self
    }

    pub fn seed() -> Self {
        Self::new().plugins(SEED_PLUGINS).config(SEED_CONFIG)
    }

    pub fn plugins(mut self, names: &[&str]) -> Self {
        self.plugins.extend(names.iter().map(|s| s.to_string()));
        self
    }

    /// Appends TOML to the config file.
    pub fn config(mut self, toml: &str) -> Self {
        self.config.push_str(toml);
        self.config.push('\n');
        self
    }

    pub fn database(mut self, url: Option<&str>) -> Self {
        self.database_url = url.map(str::to_string);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn start(self) -> TestHost {
        let dir = tempfile::tempdir().expect("temp dir");
        let plugins_dir = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins_dir).unwrap();
        for name in &self.plugins {
            let file = format!("{}.wasm", name.replace('-', "_"));
            std::fs::copy(component(name), plugins_dir.join(file)).unwrap();
        }
        let base = format!(
            "data_dir = \"data\"\n{}\n[plugins]\ndir = \"plugins\"\ncache_dir = {:?}\n[auth]\nsigning_key = {:?}\n",
            self.database_url
                .as_ref()
                .map(|url| format!("[database]\nurl = {url:?}\n"))
                .unwrap_or_default(),
            self.cache_dir.unwrap_or_else(shared_cache_dir),
            TEST_SIGNING_KEY,
        );
        // Merged as tables, so a test may add keys to the sections the harness writes.
        let mut config: toml::Table = base.parse().unwrap();
        merge(
            &mut config,
            self.config.parse().expect("test config is TOML"),
        );
        let config = toml::to_string(&config).unwrap();
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut host = TestHost::spawn(dir, config_path, self.env);
        host.admin_token = self.admin_token;
        host
    }
}

impl Default for HostBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(more)) => merge(existing, more),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// A `micro-api serve` process on free ports; killed on drop.
pub struct TestHost {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub http: String,
    pub admin: String,
    /// The internal rpc listener, when the node has one.
    pub rpc: String,
    /// The admin token the harness's admin requests send, if the host has one.
    pub admin_token: Option<String>,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl TestHost {
    fn spawn(dir: tempfile::TempDir, config_path: PathBuf, env: Vec<(String, String)>) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_micro-api"))
            .args(["serve", "--config"])
            .arg(&config_path)
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            // After the default, so a test may ask for another log level.
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start micro-api");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut host = Self {
            dir,
            config_path,
            http: String::new(),
            admin: String::new(),
            admin_token: None,
            rpc: String::new(),
            child,
            logs,
        };
        let started = Instant::now();
        loop {
            if let Some(line) = host.find_log("micro-api listening") {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                host.http = format!("http://{}", v["http"].as_str().unwrap());
                host.admin = format!("http://{}", v["admin"].as_str().unwrap());
                host.rpc = v["rpc"].as_str().unwrap_or_default().to_string();
                return host;
            }
            if let Ok(Some(status)) = host.child.try_wait() {
                panic!(
                    "micro-api exited with {status}:\n{}",
                    host.logs().join("\n")
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "micro-api did not start:\n{}",
                host.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    pub fn find_log(&self, needle: &str) -> Option<String> {
        self.logs().into_iter().find(|l| l.contains(needle))
    }

    /// Waits up to 5 s for a log line containing every needle.
    pub fn wait_for_log(&self, needles: &[&str]) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self
                .logs()
                .into_iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no log line with {needles:?}:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The host's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The plugins folder the host watches.
    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// A request to the admin listener, with the admin token if the host has one.
    pub fn admin_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = client().request(method, format!("{}{path}", self.admin));
        match &self.admin_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `GET /admin/plugins`, whole.
    pub async fn admin_plugins(&self) -> serde_json::Value {
        self.admin_request(reqwest::Method::GET, "/admin/plugins")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn admin_post(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .admin_request(reqwest::Method::POST, path)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `GET /admin/plugins`, the entry of plugin `name`.
    pub async fn plugin_stats(&self, name: &str) -> serde_json::Value {
        let all = self.admin_plugins().await;
        all["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("plugin {name} not loaded: {all}"))
    }

    /// `GET /admin/breakers`, the entry of `command`.
    pub async fn breaker(&self, command: &str) -> serde_json::Value {
        let all: serde_json::Value = self
            .admin_request(reqwest::Method::GET, "/admin/breakers")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all["breakers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["command"] == command)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// Waits for the process to exit by itself, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- micro-api log ---\n{}\n---", self.logs().join("\n"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

/// What a test reads of a response: status, `Retry-After`, body (JSON, or the text as a
/// JSON string when it is not JSON).
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: serde_json::Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Answer {
        status,
        retry_after,
        body,
    }
}

/// `POST /user/login` with the seed's form encoding.
pub async fn login_answer(host: &TestHost, form: &str) -> Answer {
    let response = client()
        .post(host.url("/user/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .unwrap();
    answer(response).await
}

/// `POST /user/login`: (status, body).
pub async fn login(host: &TestHost, form: &str) -> (u16, serde_json::Value) {
    let Answer { status, body, .. } = login_answer(host, form).await;
    (status, body)
}

/// `POST /probe/call/probe/{method}` with `payload` (probe-http calling the probe service).
pub async fn probe_call(host: &TestHost, method: &str, payload: serde_json::Value) -> Answer {
    let response = client()
        .post(host.url(&format!("/probe/call/probe/{method}")))
        .json(&payload)
        .send()
        .await
        .unwrap();
    answer(response).await
}

/// An argon2id hash with the host's parameters, to store users the tests add.
pub fn argon2id(password: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    let params = argon2::Params::new(19456, 2, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

/// The URL of a host's own SQLite database (the default `[database]`).
pub fn sqlite_url(host: &TestHost) -> String {
    format!(
        "sqlite://{}",
        host.dir.path().join("data/micro-api.db").display()
    )
}

/// The external databases configured for this run: (name, admin URL).
pub fn external_databases() -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    for (name, var) in [
        ("mysql", "MICRO_API_TEST_MYSQL_URL"),
        ("postgres", "MICRO_API_TEST_POSTGRES_URL"),
    ] {
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => found.push((name, url)),
            _ => eprintln!("SKIPPED on {name}: set {var} to run this test there too"),
        }
    }
    found
}

/// A database of its own for one test, dropped at the end: tests never share state, and
/// the machine's shared `test` database stays clean.
pub struct ScratchDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl ScratchDatabase {
    pub async fn create(kind: &str, admin_url: &str) -> Self {
        use sqlx::{AssertSqlSafe, Connection};
        let name = format!("micro_api_test_{}", rand::random::<u32>());
        let sql = format!("CREATE DATABASE {name}");
        match kind {
            "mysql" => {
                let mut c = sqlx::MySqlConnection::connect(admin_url).await.unwrap();
                sqlx::query(AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            _ => {
                let mut c = sqlx::PgConnection::connect(admin_url).await.unwrap();
                sqlx::query(AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
        }
        let mut url = url::Url::parse(admin_url).unwrap();
        url.set_path(&format!("/{name}"));
        Self {
            url: url.to_string(),
            admin_url: admin_url.to_string(),
            name,
        }
    }

    pub async fn drop_database(self) {
        use sqlx::{AssertSqlSafe, Connection};
        let sql = format!("DROP DATABASE IF EXISTS {}", self.name);
        if self.admin_url.starts_with("mysql") {
            let mut c = sqlx::MySqlConnection::connect(&self.admin_url)
                .await
                .unwrap();
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .unwrap();
        } else {
            let mut c = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
            let force = format!("{} WITH (FORCE)", sql);
            sqlx::query(AssertSqlSafe(force))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
}

/// Writes `request` as it is on a fresh connection and returns everything the server sends
/// until it closes or goes quiet (for requests no well-behaved client would send).
pub async fn raw_http(base: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything: that is the point.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && is_complete(&answer) {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whether a buffered HTTP/1.1 response with a content-length is complete.
fn is_complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .is_some_and(|len| body.len() >= len)
}

/// The middle of `values` (for the `*_figures` measurements).
pub fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// A free loopback port (bound, then released: good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The etcd the cluster tests use (`MICRO_API_TEST_ETCD`, e.g. `http://127.0.0.1:2379`), or
/// `None` after saying the test is skipped.
pub fn etcd_endpoint(test: &str) -> Option<String> {
    match std::env::var("MICRO_API_TEST_ETCD") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            eprintln!("SKIPPED {test}: set MICRO_API_TEST_ETCD to an etcd endpoint to run it");
            None
        }
    }
}

/// An etcd server of the test's own (Debian's `etcd`), for tests that stop and start it.
/// A server process of the test's own that can be stopped and started again; stopped
/// when dropped.
#[derive(Default)]
struct OwnedServer(Option<Child>);

impl OwnedServer {
    fn stop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Etcd {
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: OwnedServer,
}

impl Etcd {
    pub fn start() -> Self {
        let mut etcd = Self {
            dir: tempfile::tempdir().unwrap(),
            client_port: free_port(),
            peer_port: free_port(),
            child: OwnedServer::default(),
        };
        etcd.resume();
        etcd
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Starts (again) on the same data and ports, and waits until it answers.
    pub fn resume(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(std::env::var("MICRO_API_TEST_ETCD_BIN").unwrap_or("etcd".into()))
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("default={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd (apt-get install etcd-server)");
        self.child = OwnedServer(Some(child));
        wait_for_port(self.client_port, "etcd");
    }

    pub fn pause(&mut self) {
        self.child.stop();
    }
}

/// Every key under `prefix` in etcd, with its lease.
pub async fn etcd_keys(endpoint: &str, prefix: &str) -> Vec<(String, i64)> {
    let mut client = etcd_client::Client::connect([endpoint], None)
        .await
        .unwrap();
    let answer = client
        .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .unwrap();
    answer
        .kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap().to_string(), kv.lease()))
        .collect()
}

/// `GET <path>` on the admin listener, as JSON.
pub async fn admin_json(host: &TestHost, path: &str) -> serde_json::Value {
    host.admin_request(reqwest::Method::GET, path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The nats-server binary for the broker tests (`MICRO_API_TEST_NATS_SERVER`, e.g.
/// `/usr/sbin/nats-server`), or `None` after saying the test is skipped.
pub fn nats_server_bin(test: &str) -> Option<String> {
    match std::env::var("MICRO_API_TEST_NATS_SERVER") {
        Ok(bin) if !bin.is_empty() => Some(bin),
        _ => {
            eprintln!(
                "SKIPPED {test}: set MICRO_API_TEST_NATS_SERVER to a nats-server binary to run it"
            );
            None
        }
    }
}

/// A nats-server of the test's own, on a free loopback port (never the machine's shared
/// one), that a test may stop and start again on the same port.
pub struct NatsServer {
    bin: String,
    port: u16,
    child: OwnedServer,
}

impl NatsServer {
    pub fn start(bin: &str) -> Self {
        let mut nats = Self {
            bin: bin.to_string(),
            port: free_port(),
            child: OwnedServer::default(),
        };
        nats.resume();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port, and waits until it accepts connections.
    pub fn resume(&mut self) {
        let child = Command::new(&self.bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server (apt-get install nats-server)");
        self.child = OwnedServer(Some(child));
        wait_for_port(self.port, "nats-server");
    }

    pub fn stop(&mut self) {
        self.child.stop();
    }
}

/// Waits until a server of the test's own accepts connections on loopback `port`.
pub fn wait_for_port(port: u16, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
