//! Servers a test runs beside the host (etcd, nats-server) on free loopback ports, stopped
//! and started again at will and killed on drop, and the shared etcd a run may configure.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// An etcd server of the test's own (Debian's `etcd`), for tests that stop and start it.
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
