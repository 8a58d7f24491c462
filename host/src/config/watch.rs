//! Reading the config's layers at start, and noticing their changes while the host runs:
//! the config file is watched (`notify`), and so is the etcd layer (an etcd watch; an
//! outage keeps the running config and reconnects with backoff). What a change means is
//! the host's: it is told through [`Changes`] and applies the change from the top.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::etcd::{Store, StoreError};
use super::live::{LiveConfig, Source};
use super::{ConfigError, ConfigStoreConfig};

/// Told when a layer may have changed (`cause`: `config file` or `etcd`).
#[async_trait::async_trait]
pub trait Changes: Send + Sync + 'static {
    async fn changed(&self, cause: &'static str);
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long the start waits for etcd before starting without its layer.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads every layer for the start. A config whose file or environment is invalid is an
/// error; an unreachable etcd or an invalid etcd layer is logged, and the host starts on
/// the layers below it (the watcher applies etcd's once it answers and is valid).
pub async fn load_at_start(source: Source) -> Result<LiveConfig, ConfigError> {
    let base = source.load(&BTreeMap::new())?;
    let store_config = base.config.config_store.clone();
    if store_config.endpoints.is_empty() {
        return Ok(LiveConfig::new(base, source, BTreeMap::new()));
    }
    let read = tokio::time::timeout(START_TIMEOUT, read_store(&store_config)).await;
    let values = match read {
        Ok(Ok((values, _))) => values,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "config store unreachable: starting without the etcd layer");
            return Ok(LiveConfig::new(base, source, BTreeMap::new()));
        }
        Err(_) => {
            tracing::error!("config store did not answer: starting without the etcd layer");
            return Ok(LiveConfig::new(base, source, BTreeMap::new()));
        }
    };
    match source.load(&values) {
        Ok(layered) => Ok(LiveConfig::new(layered, source, values)),
        Err(e) => {
            tracing::error!(error = %e, "the etcd layer is invalid: starting without it");
            let live = LiveConfig::new(base, source, values);
            live.set_error(Some(e.to_string()));
            Ok(live)
        }
    }
}

async fn read_store(
    config: &ConfigStoreConfig,
) -> Result<(BTreeMap<String, String>, i64), StoreError> {
    Store::connect(config).await?.read().await
}

/// Watches the config file and the etcd layer, telling `host` of each change, until the
/// host stops.
pub fn watch(live: Arc<LiveConfig>, host: Arc<dyn Changes>) -> anyhow::Result<()> {
    let config = live.current();
    let (changed, mut changes) = tokio::sync::mpsc::channel::<&'static str>(1);
    let mut file_watcher = None;
    if let Some(path) = live.source.path.clone()
        && config.config_store.watch_file
    {
        use notify::Watcher;
        let on_change = changed.clone();
        let name = path.file_name().map(|n| n.to_os_string());
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let ours = event.is_ok_and(|e| {
                    e.paths
                        .iter()
                        .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
                });
                if ours {
                    // A full channel already means "look again soon".
                    let _ = on_change.try_send("config file");
                }
            })?;
        // The folder, not the file: editors and `mv` replace the file (a new inode).
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        watcher.watch(folder, notify::RecursiveMode::NonRecursive)?;
        file_watcher = Some(watcher);
    }
    if !config.config_store.endpoints.is_empty() {
        tokio::spawn(watch_store(
            live.clone(),
            host.clone(),
            config.config_store.clone(),
        ));
    }
    tokio::spawn(async move {
        let _watcher = file_watcher;
        while let Some(cause) = changes.recv().await {
            // Let a burst of events (an editor's save) end before reading.
            tokio::time::sleep(Duration::from_millis(50)).await;
            while changes.try_recv().is_ok() {}
            host.changed(cause).await;
        }
    });
    Ok(())
}

/// Follows the etcd layer forever, reconnecting with backoff.
async fn watch_store(live: Arc<LiveConfig>, host: Arc<dyn Changes>, config: ConfigStoreConfig) {
    let mut delay = BACKOFF_MIN;
    loop {
        let Err(e) = follow_store(&live, &*host, &config, &mut delay).await;
        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "config store watch lost, keeping the running config and retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(BACKOFF_MAX);
    }
}

/// One session: a full read, then a watch from the next revision, again and again, until
/// etcd fails.
async fn follow_store(
    live: &LiveConfig,
    host: &dyn Changes,
    config: &ConfigStoreConfig,
    delay: &mut Duration,
) -> Result<std::convert::Infallible, StoreError> {
    let mut store = Store::connect(config).await?;
    loop {
        let (values, revision) = store.read().await?;
        let changed = {
            let mut stored = live.store.lock();
            let changed = *stored != values;
            *stored = values;
            changed
        };
        if changed {
            host.changed("etcd").await;
        }
        *delay = BACKOFF_MIN;
        store.changed_after(revision).await?;
    }
}
