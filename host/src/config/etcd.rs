//! The etcd layer of the config: keys `<prefix>/<section>/<key>` (the path of the value in
//! `config.toml`, e.g. `<prefix>/breaker/user.CheckPassword/timeout_ms`), each value read
//! like an environment variable's (a TOML value, or else a string). Read at start, watched
//! while the host runs, and written by `micro-api config set`.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, WatchOptions};
use serde::{Deserialize, Serialize};

/// `[config_store]`: where the last layer of the config lives, and what is watched.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigStoreConfig {
    /// etcd endpoints holding the last layer; empty: no etcd layer.
    pub endpoints: Vec<String>,
    /// Keys `<prefix>/<section>/<key>` (e.g. `<prefix>/breaker/default/timeout_ms`).
    pub prefix: String,
    /// Apply changes of the config file without a restart.
    pub watch_file: bool,
}

impl Default for ConfigStoreConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            prefix: "/micro-api/config".into(),
            watch_file: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no etcd endpoints: set [config_store] endpoints")]
    NotConfigured,
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd key {0} is not UTF-8")]
    NotText(String),
}

/// A connection to the config store.
pub struct Store {
    client: Client,
    /// `<prefix>/`, the start of every key.
    prefix: String,
}

impl Store {
    pub async fn connect(config: &ConfigStoreConfig) -> Result<Self, StoreError> {
        if config.endpoints.is_empty() {
            return Err(StoreError::NotConfigured);
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(3));
        let client = Client::connect(&config.endpoints, Some(options)).await?;
        Ok(Self {
            client,
            prefix: format!("{}/", config.prefix.trim_end_matches('/')),
        })
    }

    /// Every value of the layer, by key path (`section/key`), and the revision read.
    pub async fn read(&mut self) -> Result<(BTreeMap<String, String>, i64), StoreError> {
        let answer = self
            .client
            .get(self.prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await?;
        let revision = answer.header().map_or(0, |h| h.revision());
        let mut values = BTreeMap::new();
        for kv in answer.kvs() {
            let key = kv
                .key_str()
                .map_err(|_| StoreError::NotText(String::from_utf8_lossy(kv.key()).into()))?;
            let value = kv
                .value_str()
                .map_err(|_| StoreError::NotText(key.into()))?;
            if let Some(path) = key.strip_prefix(&self.prefix) {
                values.insert(path.to_string(), value.to_string());
            }
        }
        Ok((values, revision))
    }

    pub async fn put(&mut self, path: &str, value: &str) -> Result<(), StoreError> {
        let key = format!("{}{path}", self.prefix);
        self.client.put(key, value, None).await?;
        Ok(())
    }

    /// Removes `path`; returns whether it was set.
    pub async fn delete(&mut self, path: &str) -> Result<bool, StoreError> {
        let key = format!("{}{path}", self.prefix);
        Ok(self.client.delete(key, None).await?.deleted() > 0)
    }

    /// Waits until something under the prefix changes after `revision`.
    pub async fn changed_after(&mut self, revision: i64) -> Result<(), StoreError> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut stream = self
            .client
            .watch(self.prefix.as_str(), Some(options))
            .await?;
        while let Some(answer) = stream.message().await? {
            if answer.canceled() {
                break;
            }
            if !answer.events().is_empty() {
                return Ok(());
            }
        }
        Err(StoreError::Etcd(etcd_client::Error::WatchError(
            "the watch stream ended".into(),
        )))
    }
}
