//! A real `micro-api serve` process per test: `HostBuilder` writes its config and plugins
//! folder, `TestHost` reads its addresses and logs and kills it on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::components::{SEED_CONFIG, SEED_PLUGINS, TEST_SIGNING_KEY, component};
use super::http::{admin_json, client};

/// A compile cache shared by every test process, so each component compiles once per run.
fn shared_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-compile-cache")
}

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
        admin_json(self, "/admin/plugins").await
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

    /// How many times `name` has been invoked, from `/admin/plugins`.
    pub async fn invocations(&self, name: &str) -> u64 {
        self.plugin_stats(name).await["invocations"]
            .as_u64()
            .unwrap()
    }

    /// Waits (up to 15 s) until `/admin/health/ready` answers 200.
    pub async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            let response = client()
                .get(format!("{}/admin/health/ready", self.admin))
                .send()
                .await
                .unwrap();
            if response.status() == 200 {
                return;
            }
            let body = response.text().await.unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "not ready: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /admin/breakers`, the entry of `command`.
    pub async fn breaker(&self, command: &str) -> serde_json::Value {
        let all = admin_json(self, "/admin/breakers").await;
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
