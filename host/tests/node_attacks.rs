//! Attacks on the wire between nodes, each over real connections to real hosts: clients
//! that are not nodes of the cluster against a listener with mutual TLS, a holder of the
//! secret calling what `[cluster] allow` does not let it, and password guesses sent to the
//! rpc listener directly past the login limit.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use common::{HostBuilder, SEED_CONFIG, TestHost, admin_json, etcd_endpoint, login};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;

const SECRET: &str = "test-cluster-secret-0123456789";
/// The name every node certificate carries (`[cluster.tls] server_name`'s default).
const NODE_NAME: &str = "micro-api-node";

/// A CA in a temporary folder, and node certificates it signs.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Self { dir, ca }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for `names` (and the node name), with its key: (cert, key) files.
    fn node(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        names.push(NODE_NAME.into());
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (cert_path, key_path) = (
            self.dir.path().join(format!("{file}.crt")),
            self.dir.path().join(format!("{file}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    /// `[cluster.tls]` for a node with the certificate `file` for `names`.
    fn config(&self, file: &str, names: &[&str]) -> String {
        let (cert, key) = self.node(file, names);
        format!(
            "[cluster.tls]\ncert = {cert:?}\nkey = {key:?}\nca = {:?}\n",
            self.ca()
        )
    }

    /// A client config trusting `self`'s CA, presenting the certificate `file` signed by
    /// `signer` (none: no client certificate).
    fn client(&self, signer: Option<(&Pki, &str)>) -> rustls::ClientConfig {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(self.ca()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match signer {
            None => builder.with_no_client_auth(),
            Some((pki, file)) => {
                let (cert, key) = pki.node(file, &[file]);
                builder
                    .with_client_auth_cert(
                        vec![CertificateDer::from_pem_file(cert).unwrap()],
                        PrivateKeyDer::from_pem_file(key).unwrap(),
                    )
                    .unwrap()
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        config
    }
}

/// `POST /rpc/<service>/<method>` with the secret over HTTP/2 on a fresh connection: over
/// TLS with `tls`, else in plaintext (prior knowledge). `Err` says where it failed.
async fn rpc_call(
    address: &str,
    tls: Option<rustls::ClientConfig>,
    path: &str,
    payload: serde_json::Value,
) -> Result<(u16, serde_json::Value), String> {
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = http::Request::post(format!("http://{address}{path}"))
        .header("authorization", format!("Bearer {SECRET}"))
        .body(Full::new(Bytes::from(payload.to_string())))
        .unwrap();
    let exchange = async {
        let response = match tls {
            Some(config) => {
                let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
                let name = ServerName::try_from(NODE_NAME).unwrap();
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                send(TokioIo::new(stream), request).await?
            }
            None => send(TokioIo::new(tcp), request).await?,
        };
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, serde_json::from_slice(&body).unwrap_or(json!(null))))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no answer in 10 s".to_string())?
}

async fn send<IO>(
    io: IO,
    request: http::Request<Full<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    tokio::spawn(connection);
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))
}

/// A node of an etcd cluster with the seed's config, its `plugins` and `extra`.
fn cluster_node(etcd: &str, prefix: &str, id: &str, plugins: &[&str], extra: &str) -> TestHost {
    HostBuilder::new()
        .plugins(plugins)
        .config(&format!(
            "[server]\nnode_id = \"{id}\"\nrpc = \"127.0.0.1:0\"\n\n[registry]\nbackend = \"etcd\"\nendpoints = [\"{etcd}\"]\nprefix = \"{prefix}\"\nttl_secs = 2\n\n[cluster]\nsecret = \"{SECRET}\"\n"
        ))
        .config(SEED_CONFIG)
        .config(extra)
        .start()
}

/// A single node whose rpc listener the test calls directly (no registry needed).
fn rpc_node(plugins: &[&str], extra: &str) -> TestHost {
    HostBuilder::new()
        .plugins(plugins)
        .config(&format!(
            "[server]\nrpc = \"127.0.0.1:0\"\n\n[cluster]\nsecret = \"{SECRET}\"\n"
        ))
        .config(SEED_CONFIG)
        .config(extra)
        .start()
}

#[tokio::test]
async fn mutual_tls_carries_logins_and_refuses_every_client_that_is_not_a_node() {
    let Some(etcd) = etcd_endpoint("mutual_tls_carries_logins") else {
        return;
    };
    let pki = Pki::new("cluster CA");
    let prefix = format!("/micro-api-test-{:08x}", rand::random::<u32>());
    let n1 = cluster_node(
        &etcd,
        &prefix,
        "n1",
        &["user-api"],
        &pki.config("n1", &["user-api-node"]),
    );
    // Only the user-api node may mint tokens; any node may look users up.
    let allow = "[cluster.allow]\n\"*\" = [\"user.GetUserByName\"]\n\"user-api-node\" = [\"user\", \"auth.MakeAccessToken\"]\n";
    let n2 = cluster_node(
        &etcd,
        &prefix,
        "n2",
        &["user", "auth"],
        &format!("{}{allow}", pki.config("n2", &["user-node"])),
    );
    n1.wait_ready().await;
    let (status, body) = login(&n1, "userName=micro&pwd=123").await;
    assert_eq!(
        status, 200,
        "a login crosses the nodes over mutual TLS: {body}"
    );
    let ran = (n2.invocations("user").await, n2.invocations("auth").await);
    assert!(ran.0 >= 1 && ran.1 >= 1, "{ran:?}");

    let rogue = Pki::new("another CA");
    let token = (
        "/rpc/auth/MakeAccessToken",
        json!({ "user_id": 1, "user_name": "x" }),
    );
    let attacks = [
        (
            "a certificate of another CA",
            Some(pki.client(Some((&rogue, "rogue")))),
        ),
        ("no client certificate", Some(pki.client(None))),
        ("plaintext HTTP/2 with the secret", None),
    ];
    for (what, tls) in attacks {
        let answer = rpc_call(&n2.rpc, tls, token.0, token.1.clone()).await;
        assert!(answer.is_err(), "{what}: {answer:?}");
        eprintln!("{what}: {}", answer.unwrap_err());
    }
    let front = admin_json(&n2, "/admin/front").await;
    assert!(
        front["front"]["tls_handshakes_failed"].as_u64() >= Some(3),
        "the failed handshakes are counted: {front}"
    );
    n2.wait_for_log(&["TLS handshake failed"]);

    // A node of the cluster holding the secret, but not the user-api node.
    let other = pki.client(Some((&pki, "other-node")));
    let (status, body) = rpc_call(&n2.rpc, Some(other.clone()), token.0, token.1.clone())
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body["Forbidden"].is_string(), "{body}");
    let lookup = json!({ "name": "micro" });
    let (status, body) = rpc_call(&n2.rpc, Some(other), "/rpc/user/GetUserByName", lookup)
        .await
        .unwrap();
    assert_eq!(status, 200, "\"*\" may look users up: {body}");
    assert_eq!(
        (n2.invocations("user").await, n2.invocations("auth").await),
        (ran.0 + 1, ran.1),
        "no refused call reached a component"
    );
    // Its certificate carries no name that allow lists: it is "*".
    n2.wait_for_log(&[
        "403: rpc call not in [cluster] allow",
        "MakeAccessToken",
        "\"caller\":\"*\"",
    ]);
    assert!(
        n2.logs()
            .iter()
            .chain(n1.logs().iter())
            .all(|l| !l.contains(SECRET)),
        "the secret is in no log line"
    );
}

#[tokio::test]
async fn a_holder_of_the_secret_calls_only_what_allow_lets_it() {
    let token = json!({ "user_id": 10001, "user_name": "micro" });
    let narrow = rpc_node(&["auth"], "[cluster.allow]\n\"*\" = [\"user\"]\n");
    let (status, body) = rpc_call(
        &narrow.rpc,
        None,
        "/rpc/auth/MakeAccessToken",
        token.clone(),
    )
    .await
    .unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["Forbidden"], "* may not call auth.MakeAccessToken",
        "{body}"
    );
    assert_eq!(narrow.invocations("auth").await, 0, "auth never ran");
    narrow.wait_for_log(&["403: rpc call not in [cluster] allow", "auth"]);

    let open = rpc_node(&["auth"], "");
    let (status, body) = rpc_call(&open.rpc, None, "/rpc/auth/MakeAccessToken", token)
        .await
        .unwrap();
    assert_eq!(status, 200, "the default allows everything: {body}");
    assert!(body["token"].is_string(), "{body}");
}

#[tokio::test]
async fn password_guesses_on_the_rpc_listener_stop_at_the_names_limit() {
    let host = rpc_node(&["user"], "[login_limit]\nmax_failures_per_user = 3\n");
    let check = |name: &str, pwd: &str| {
        let payload = json!({ "name": name, "pwd": pwd });
        let address = host.rpc.clone();
        async move {
            rpc_call(&address, None, "/rpc/user/CheckPassword", payload)
                .await
                .unwrap()
        }
    };
    for guess in 0..3 {
        let (status, body) = check("micro", &format!("guess-{guess}")).await;
        assert_eq!(
            (status, body["App"]["code"].as_str()),
            (500, Some("unauthorized")),
            "{body}"
        );
    }
    let ran = host.invocations("user").await;
    assert_eq!(ran, 3);
    for pwd in ["guess-3", "123"] {
        let (status, body) = check("micro", pwd).await;
        assert_eq!(
            (status, body["App"]["code"].as_str()),
            (429, Some("too_many_requests")),
            "past the limit, even the right password waits: {body}"
        );
    }
    assert_eq!(
        host.invocations("user").await,
        ran,
        "refused before the component ran"
    );
    host.wait_for_log(&["429: too many failed password checks from other nodes"]);
    // Counted per name, not per calling node: another name through the same node still
    // gets checked (every login through a front node arrives from its one address).
    let (status, body) = check("someone-else", "x").await;
    assert_eq!(
        (status, body["App"]["code"].as_str()),
        (500, Some("unauthorized"))
    );
    // A padded name would be another key for the same account on some collations.
    let (status, body) = check("micro ", "123").await;
    assert_eq!((status, body["Invalid"].is_string()), (400, true), "{body}");
}
