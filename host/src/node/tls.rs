//! Mutual TLS between nodes (`[cluster.tls]`): every node holds a certificate signed by the
//! cluster's CA and carrying `server_name`. The rpc listener accepts only clients that
//! present such a certificate (rustls' WebPKI client verifier); a node calling another
//! presents its own and trusts only the CA, verifying `server_name` rather than the
//! address (nodes are registered by IP address, which their certificates need not carry).
//!
//! TLS 1.3 only, on rustls' ring provider, named explicitly rather than installed as the
//! process default (other crates in the process may pick theirs).

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use super::config::TlsConfig;

/// What the listener speaks over TLS: the rpc client is HTTP/2 only.
const ALPN_H2: &[u8] = b"h2";

/// Why `[cluster.tls]` cannot be used; the message names the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[cluster.tls] {key} = {path:?}: {problem}")]
    File {
        key: &'static str,
        path: std::path::PathBuf,
        problem: String,
    },
    #[error("[cluster.tls] {0}")]
    Invalid(String),
}

/// This node's TLS, both ends.
pub struct NodeTls {
    /// For the rpc listener.
    pub acceptor: TlsAcceptor,
    /// For calls to other nodes.
    pub client: rustls::ClientConfig,
    /// The name a called node's certificate must carry.
    pub server_name: ServerName<'static>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_error(key: &'static str, path: &Path, problem: impl ToString) -> TlsError {
    TlsError::File {
        key,
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    if path.as_os_str().is_empty() {
        return Err(file_error(key, path, "name a PEM file"));
    }
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(key, path, e))?;
    if certs.is_empty() {
        return Err(file_error(key, path, "holds no PEM certificate"));
    }
    Ok(certs)
}

impl NodeTls {
    /// Reads and checks the files: they parse, the key is the certificate's, the
    /// certificate is signed by the CA and carries `server_name`.
    pub fn load(config: &TlsConfig) -> Result<Self, TlsError> {
        let chain = certificates("cert", &config.cert)?;
        let ca = certificates("ca", &config.ca)?;
        if config.key.as_os_str().is_empty() {
            return Err(file_error("key", &config.key, "name a PEM file"));
        }
        let key = PrivateKeyDer::from_pem_file(&config.key)
            .map_err(|e| file_error("key", &config.key, e))?;
        let server_name = match ServerName::try_from(config.server_name.clone()) {
            Ok(name @ ServerName::DnsName(_)) => name,
            _ => {
                return Err(TlsError::Invalid(format!(
                    "server_name = {:?}: a DNS name every node's certificate carries",
                    config.server_name
                )));
            }
        };
        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots
                .add(cert)
                .map_err(|e| file_error("ca", &config.ca, e))?;
        }
        let roots = Arc::new(roots);
        let provider = provider();
        let versions = &[&rustls::version::TLS13];
        let invalid = |e: rustls::Error| TlsError::Invalid(e.to_string());
        let mismatch = |e: rustls::Error| {
            file_error(
                "key",
                &config.key,
                format!("not the key of cert {:?}: {e}", config.cert),
            )
        };

        // The node's own certificate must pass what its callers will check.
        let verifier = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| file_error("ca", &config.ca, e))?;
        verifier
            .verify_server_cert(&chain[0], &chain[1..], &server_name, &[], UnixTime::now())
            .map_err(|e| {
                file_error(
                    "cert",
                    &config.cert,
                    format!(
                        "other nodes would refuse it (signed by ca, valid now, carrying server_name {:?}?): {e}",
                        config.server_name
                    ),
                )
            })?;

        let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| file_error("ca", &config.ca, e))?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(invalid)?
            .with_client_cert_verifier(clients)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(mismatch)?;
        server.alpn_protocols = vec![ALPN_H2.to_vec()];

        // Its ALPN is set by the connector, which speaks HTTP/2 only.
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(invalid)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(mismatch)?;

        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            client,
            server_name,
        })
    }
}
