//! The vocabulary every config section is written in, below everything that reads one:
//! secrets that never print (and are checked without leaking through timing), and a
//! plugin's `[plugin.<name>]` table as each capability reads its own keys from it.
//!
//! A capability owns the keys it grants (`sql = true`, `rpc = [...]`): it deserializes just
//! those from the plugin's table, so adding a capability never touches a shared struct.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a secret value is shown as, wherever config is shown.
pub const REDACTED: &str = "<secret>";

/// A credential from the config: deserialized as a string, never shown by `Debug` nor
/// serialized as itself (the admin API and `config list` serialize the config).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A secret's SHA-256 digest, which offered values are checked against. Digests are
/// compared in constant time, so a check's time tells neither where an offered value
/// differs nor how long the secret is (only the offered value is hashed per check, and its
/// sender knows its length).
#[derive(Clone)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Whether `offered` is the secret.
    pub fn matches(&self, offered: &[u8]) -> bool {
        Sha256::digest(offered).ct_eq(&self.0).into()
    }
}

impl std::fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretDigest(<redacted>)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One `[plugin.<name>]` table as written: each capability reads its own keys from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PluginSection(toml::Table);

impl PluginSection {
    pub fn new(table: toml::Table) -> Self {
        Self(table)
    }

    /// The keys it sets.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The keys `keys` of this table as one `T` (the others are not `T`'s business);
    /// `T`'s own defaults fill what is unset. The error names the plugin and the key.
    pub fn read<T: DeserializeOwned>(&self, plugin: &str, keys: &[&str]) -> Result<T, String> {
        let picked: toml::Table = self
            .0
            .iter()
            .filter(|(k, _)| keys.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        T::deserialize(toml::Value::Table(picked))
            .map_err(|e| format!("[plugin.{plugin}] {}", e.message()))
    }
}

/// Query parameters whose value is a credential, by a part of their name.
const CREDENTIAL_PARAMETERS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "key",
    "auth",
    "credential",
    "signature",
    "sig",
];

/// `text` with the user information of a `scheme://user:password@host` URL and the values of
/// credential-looking query parameters replaced by [`REDACTED`]; text that is no URL as it is.
/// By hand rather than through `url::Url`, which would also rewrite the rest of the text.
/// Also for error messages that name a URL from the config.
pub fn redact_url(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{REDACTED}@{host}"),
        None => authority.to_string(),
    };
    let (before_fragment, fragment) = tail.split_at(tail.find('#').unwrap_or(tail.len()));
    let tail = match before_fragment.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if is_credential_parameter(name) => {
                        format!("{name}={REDACTED}")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
        None => before_fragment.to_string(),
    };
    format!("{scheme}://{authority}{tail}{fragment}")
}

fn is_credential_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    CREDENTIAL_PARAMETERS.iter().any(|part| name.contains(part))
}

/// One plugin's own values, `[plugin.<name>.config]` and `[plugin.<name>.secrets]`: read
/// by the capabilities that hand them to the plugin.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginValues {
    /// Values it can read through the `config` import.
    pub config: BTreeMap<String, String>,
    /// Values it can read like `config`, but never logged, shown by the admin API or
    /// `config list`, nor given to another plugin.
    pub secrets: BTreeMap<String, Secret>,
}

impl PluginValues {
    /// The value of `key`, a plain value or a secret.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.config
            .get(key)
            .map(String::as_str)
            .or_else(|| self.secrets.get(key).map(Secret::expose))
    }
}

/// Every `[plugin.<name>]` table, by plugin name.
pub type PluginSections = BTreeMap<String, PluginSection>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_digest_refuses_every_other_value_whatever_its_length() {
        let digest = SecretDigest::of("test-cluster-secret-0123456789");
        assert!(digest.matches(b"test-cluster-secret-0123456789"));
        for other in [
            &b""[..],
            b"t",
            b"test-cluster-secret-012345678",
            b"test-cluster-secret-01234567890",
            b"test-cluster-secret-0123456789\0",
            b"Test-cluster-secret-0123456789",
        ] {
            assert!(!digest.matches(other), "{other:?}");
        }
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Grant {
        sql: bool,
        rpc: Vec<String>,
    }

    #[test]
    fn a_capability_reads_its_own_keys_only() {
        let section = PluginSection::new(
            "sql = true\nrpc = [\"user\"]\nother = 1\n"
                .parse::<toml::Table>()
                .unwrap(),
        );
        let grant: Grant = section.read("p", &["sql", "rpc"]).unwrap();
        assert_eq!(
            grant,
            Grant {
                sql: true,
                rpc: vec!["user".into()]
            }
        );
        let empty: Grant = PluginSection::default().read("p", &["sql"]).unwrap();
        assert_eq!(empty, Grant::default());
        let bad = PluginSection::new("sql = 3\n".parse().unwrap());
        let error = bad.read::<Grant>("p", &["sql"]).unwrap_err();
        assert!(error.starts_with("[plugin.p] "), "{error}");
    }

    #[test]
    fn secrets_never_show() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"<secret>\"");
        assert_eq!(secret.expose(), "hunter2");
    }
}
