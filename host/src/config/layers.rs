//! Which layer each value of the effective config came from: built-in defaults <
//! `config.toml` < environment < etcd. Shown by `GET /admin/config`, secrets redacted.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Config;
use crate::settings::{REDACTED, redact_url};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Default,
    File,
    Env,
    Etcd,
}

/// The layer that last set each key path (`section/key`, as in etcd).
#[derive(Debug, Clone, Default)]
pub struct Origins(BTreeMap<String, Layer>);

/// A config with the origin of its values.
#[derive(Debug, Clone)]
pub struct Layered {
    pub config: Config,
    pub origins: Origins,
}

/// One effective value, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct Effective {
    pub key: String,
    pub value: serde_json::Value,
    pub layer: Layer,
}

impl Origins {
    /// Records every value of `doc` as coming from `layer`.
    pub fn record(&mut self, doc: &toml::Table, layer: Layer) {
        let mut leaves = Vec::new();
        leaves_of_toml(doc, String::new(), &mut leaves);
        for key in leaves {
            self.0.insert(key, layer);
        }
    }

    /// The layer of `key`: its own, or that of the nearest table set as a whole.
    fn layer_of(&self, key: &str) -> Layer {
        let mut candidate = key;
        loop {
            if let Some(layer) = self.0.get(candidate) {
                return *layer;
            }
            match candidate.rsplit_once('/') {
                Some((parent, _)) => candidate = parent,
                None => return Layer::Default,
            }
        }
    }
}

fn leaves_of_toml(table: &toml::Table, prefix: String, out: &mut Vec<String>) {
    for (key, value) in table {
        let path = join(&prefix, key);
        match value {
            toml::Value::Table(inner) => leaves_of_toml(inner, path, out),
            _ => out.push(path),
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}/{key}")
    }
}

/// Whether `key` names a credential: shown redacted wherever config is shown.
pub fn is_secret_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    (parts.first() == Some(&"plugin") && parts.get(2) == Some(&"secrets"))
        || matches!(
            parts.last(),
            Some(&("signing_key" | "secret" | "token" | "password"))
        )
        // A database URL may carry a password.
        || key == "database/url"
}

impl Layered {
    /// Every value of the effective config with its layer; secrets as [`REDACTED`].
    pub fn effective(&self) -> Vec<Effective> {
        let mut out = Vec::new();
        let value = serde_json::to_value(&self.config).unwrap_or_default();
        flatten_json(&value, String::new(), &mut |key, value| {
            let value = if is_secret_key(&key) && !value.is_null() {
                serde_json::Value::String(REDACTED.into())
            } else {
                without_credentials(value)
            };
            out.push(Effective {
                layer: self.origins.layer_of(&key),
                key,
                value,
            });
        });
        out
    }
}

/// `value` with the credentials of every URL in it (a string, or the strings of a list)
/// replaced by [`REDACTED`]: a broker URL, an etcd endpoint, the OTLP endpoint or a plugin's
/// environment value may carry `user:password@` or `?token=...`.
fn without_credentials(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::String(text) => serde_json::Value::String(redact_url(text)),
        serde_json::Value::Array(items) => items.iter().map(without_credentials).collect(),
        other => other.clone(),
    }
}

fn flatten_json(
    value: &serde_json::Value,
    prefix: String,
    emit: &mut impl FnMut(String, &serde_json::Value),
) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                flatten_json(inner, join(&prefix, key), emit);
            }
        }
        other => emit(prefix, other),
    }
}

/// Merges `from` into `into`, table by table; a value of `from` wins.
pub fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(more)) => merge(existing, more),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_says_its_layer_and_secrets_stay_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[server]\nbody_limit = 10\n[plugin.p]\nconfig = { a = \"1\" }\n",
        )
        .unwrap();
        let env = [("MICRO_API__SERVER__NODE_ID".to_string(), "n9".to_string())];
        let store = BTreeMap::from([
            ("breaker/p.m/timeout_ms".to_string(), "50".to_string()),
            (
                "plugin/p/secrets/key".to_string(),
                "hunter2-secret".to_string(),
            ),
        ]);
        let layered = Config::load_layered(Some(&path), &env, &store).unwrap();
        assert_eq!(layered.config.breaker.settings("p.m").timeout_ms, 50);
        let values: crate::settings::PluginValues = layered.config.plugin["p"]
            .read("p", &["config", "secrets"])
            .unwrap();
        assert_eq!(values.secrets["key"].expose(), "hunter2-secret");
        let effective = layered.effective();
        let layer = |key: &str| effective.iter().find(|e| e.key == key).unwrap().layer;
        assert_eq!(layer("server/body_limit"), Layer::File);
        assert_eq!(layer("server/node_id"), Layer::Env);
        assert_eq!(layer("breaker/p.m/timeout_ms"), Layer::Etcd);
        assert_eq!(layer("server/drain_timeout_ms"), Layer::Default);
        assert_eq!(layer("plugin/p/config/a"), Layer::File);
        let shown = serde_json::to_string(&effective).unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains(REDACTED));
    }

    #[test]
    fn credentials_inside_urls_are_redacted() {
        for (url, shown) in [
            (
                "nats://alice:pa55@127.0.0.1:4222",
                "nats://<secret>@127.0.0.1:4222",
            ),
            ("nats://t0ken@nats:4222", "nats://<secret>@nats:4222"),
            (
                "http://u:p@collector:4318/v1?token=abc&x=1&API_KEY=k#f",
                "http://<secret>@collector:4318/v1?token=<secret>&x=1&API_KEY=<secret>#f",
            ),
            (
                "https://h/p?access_token=a",
                "https://h/p?access_token=<secret>",
            ),
            ("http://127.0.0.1:2379", "http://127.0.0.1:2379"),
            ("https://h/a@b?q=1", "https://h/a@b?q=1"),
            ("plain text", "plain text"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        let env = [(
            "MICRO_API__CONFIG_STORE__ENDPOINTS".to_string(),
            r#"["http://root:etcd-pass@127.0.0.1:2379"]"#.to_string(),
        )];
        let layered = Config::load_layered(None, &env, &BTreeMap::new()).unwrap();
        let effective = layered.effective();
        let endpoints = effective
            .iter()
            .find(|e| e.key == "config_store/endpoints")
            .unwrap();
        assert_eq!(
            endpoints.value,
            serde_json::json!(["http://<secret>@127.0.0.1:2379"])
        );
    }
}
