//! `[cluster]`: how the nodes of a cluster call each other, and what each may call.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::allow::{ANY_CALLER, Pattern};
use super::tls::NodeTls;

/// How the nodes of a cluster call each other.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The secret every node presents on the rpc listener (better from
    /// `MICRO_API__CLUSTER__SECRET`); required with more than one node. With TLS it is a
    /// second factor.
    pub secret: Option<String>,
    /// Connections kept per remote node.
    pub pool_size: usize,
    /// How long a node whose connections fail is left out before it is tried again.
    pub eject_ms: u64,
    /// `[cluster.tls]`: mutual TLS between nodes. Without it the rpc wire is plaintext,
    /// secret included: for one machine or a trusted network only.
    pub tls: Option<TlsConfig>,
    /// What each caller may call on this node's rpc listener: a caller's name (a DNS name
    /// its TLS certificate carries; `"*"` is every caller holding the secret, and the only
    /// name there is without TLS) to patterns, `"*"`, a service (`"user"`) or one method
    /// (`"user.GetUserByName"`). A caller may call what `"*"` and each of its names allow.
    pub allow: BTreeMap<String, Vec<String>>,
    /// Methods that check a password: `"service.method"` to the JSON field of the payload
    /// holding the user name. Called by another node, they are counted by the login limiter
    /// against that name (`[login_limit] max_failures_per_user`).
    pub login_checks: BTreeMap<String, String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            secret: None,
            pool_size: 10,
            eject_ms: 5000,
            tls: None,
            allow: BTreeMap::from([(ANY_CALLER.into(), vec!["*".into()])]),
            login_checks: BTreeMap::from([("user.CheckPassword".into(), "name".into())]),
        }
    }
}

/// `[cluster.tls]`: this node's certificate and key, and the CA that signs every node's.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM: this node's certificate (then any intermediates), signed by `ca`.
    pub cert: PathBuf,
    /// PEM: the private key of `cert`.
    pub key: PathBuf,
    /// PEM: the CA certificate(s) every node's certificate is signed by.
    pub ca: PathBuf,
    /// The DNS name every node's certificate carries, which a caller verifies (nodes are
    /// registered by IP address, which certificates need not carry).
    pub server_name: String,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: PathBuf::new(),
            key: PathBuf::new(),
            ca: PathBuf::new(),
            server_name: "micro-api-node".into(),
        }
    }
}

impl ClusterConfig {
    /// Every problem of the section, each with its fix.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(tls) = &self.tls
            && let Err(e) = NodeTls::load(tls)
        {
            problems.push(e.to_string());
        }
        for (caller, patterns) in &self.allow {
            if caller != ANY_CALLER && self.tls.is_none() {
                problems.push(format!(
                    "[cluster] allow.{caller:?}: callers have names only with [cluster.tls]; without it, list what every caller may call under \"*\""
                ));
            }
            if caller.is_empty() {
                problems.push(
                    "[cluster] allow: a caller is \"*\" or a DNS name of its certificate".into(),
                );
            }
            for pattern in patterns {
                if Pattern::parse(pattern).is_none() {
                    problems.push(format!(
                        "[cluster] allow.{caller:?}: {pattern:?} is not \"*\", a service (\"user\") or a method (\"user.GetUserByName\")"
                    ));
                }
            }
        }
        for (method, field) in &self.login_checks {
            if !matches!(Pattern::parse(method), Some(Pattern::Method(..))) {
                problems.push(format!(
                    "[cluster] login_checks: {method:?} is not a method (\"user.CheckPassword\")"
                ));
            }
            if field.is_empty() {
                problems.push(format!(
                    "[cluster] login_checks.{method:?}: name the JSON field holding the user name (\"name\")"
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    fn ca() -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    /// Writes `<file>.crt` for `name` signed by `ca`, and `<file>.key`.
    fn node(dir: &std::path::Path, file: &str, name: &str, ca: &CertifiedIssuer<'_, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, ca)
            .unwrap();
        std::fs::write(dir.join(format!("{file}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    }

    fn problems(tls: Option<TlsConfig>, allow: &[(&str, &str)]) -> Vec<String> {
        let mut config = ClusterConfig {
            tls,
            ..ClusterConfig::default()
        };
        for (caller, pattern) in allow {
            config
                .allow
                .insert(caller.to_string(), vec![pattern.to_string()]);
        }
        config.problems()
    }

    #[test]
    fn tls_files_are_checked_at_load_and_each_problem_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let (ours, theirs) = (ca(), ca());
        std::fs::write(dir.path().join("ca.pem"), ours.pem()).unwrap();
        node(dir.path(), "good", "micro-api-node", &ours);
        node(dir.path(), "foreign", "micro-api-node", &theirs);
        node(dir.path(), "unnamed", "other-name", &ours);
        let tls = |cert: &str, key: &str| TlsConfig {
            cert: dir.path().join(format!("{cert}.crt")),
            key: dir.path().join(format!("{key}.key")),
            ca: dir.path().join("ca.pem"),
            ..TlsConfig::default()
        };
        assert_eq!(
            problems(Some(tls("good", "good")), &[]),
            Vec::<String>::new()
        );
        let only = |tls: TlsConfig| {
            let found = problems(Some(tls), &[]);
            assert_eq!(found.len(), 1, "{found:#?}");
            found[0].clone()
        };
        let missing = only(tls("absent", "good"));
        assert!(missing.starts_with("[cluster.tls] cert = "), "{missing}");
        let mismatch = only(tls("good", "foreign"));
        assert!(
            mismatch.starts_with("[cluster.tls] key = ") && mismatch.contains("not the key"),
            "{mismatch}"
        );
        for (cert, why) in [("foreign", "refuse it"), ("unnamed", "not valid for name")] {
            let refused = only(tls(cert, cert));
            assert!(
                refused.starts_with("[cluster.tls] cert = ") && refused.contains(why),
                "{refused}"
            );
        }
        let mut no_ca = tls("good", "good");
        no_ca.ca = PathBuf::new();
        assert!(only(no_ca).starts_with("[cluster.tls] ca = "));
        let mut ip = tls("good", "good");
        ip.server_name = "10.0.0.1".into();
        assert!(only(ip).contains("server_name"));
    }

    #[test]
    fn allow_and_login_checks_are_checked() {
        assert_eq!(problems(None, &[]), Vec::<String>::new(), "the defaults");
        let named = problems(None, &[("user-api-node", "user")]);
        assert!(named[0].contains("[cluster.tls]"), "{named:?}");
        let bad = problems(None, &[("*", "user.*")]);
        assert!(bad[0].contains("\"user.*\""), "{bad:?}");
        let config = ClusterConfig {
            login_checks: BTreeMap::from([("user".into(), "".into())]),
            ..ClusterConfig::default()
        };
        assert_eq!(config.problems().len(), 2, "{:?}", config.problems());
    }
}
