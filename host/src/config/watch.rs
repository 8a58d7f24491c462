//! Reading the config's layers at start, and applying their changes while the host runs:
//! the config file is watched (`notify`), and so is the etcd layer (an etcd watch; an
//! outage keeps the running config and reconnects with backoff).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::etcd::{Store, StoreError};
use super::layers::Layered;
use super::live::{LiveConfig, Source};
use super::{Config, ConfigError, ConfigStoreConfig};
use crate::app::App;
use crate::front::router::Router;
use crate::plugins::Plugin;

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

/// Watches the config file and the etcd layer, applying each change, until the host stops.
pub fn watch(app: Arc<App>) -> anyhow::Result<()> {
    let config = app.current_config();
    let (changed, mut changes) = tokio::sync::mpsc::channel::<&'static str>(1);
    let mut file_watcher = None;
    if let Some(path) = app.live.source.path.clone()
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
        tokio::spawn(watch_store(app.clone(), config.config_store.clone()));
    }
    tokio::spawn(async move {
        let _watcher = file_watcher;
        while let Some(cause) = changes.recv().await {
            // Let a burst of events (an editor's save) end before reading.
            tokio::time::sleep(Duration::from_millis(50)).await;
            while changes.try_recv().is_ok() {}
            reapply(&app, cause).await;
        }
    });
    Ok(())
}

/// Follows the etcd layer forever, reconnecting with backoff.
async fn watch_store(app: Arc<App>, config: ConfigStoreConfig) {
    let mut delay = BACKOFF_MIN;
    loop {
        let Err(e) = follow_store(&app, &config, &mut delay).await;
        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "config store watch lost, keeping the running config and retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(BACKOFF_MAX);
    }
}

/// One session: a full read, then a watch from the next revision, again and again, until
/// etcd fails.
async fn follow_store(
    app: &Arc<App>,
    config: &ConfigStoreConfig,
    delay: &mut Duration,
) -> Result<std::convert::Infallible, StoreError> {
    let mut store = Store::connect(config).await?;
    loop {
        let (values, revision) = store.read().await?;
        let changed = {
            let mut stored = app.live.store.lock().expect("store lock");
            let changed = *stored != values;
            *stored = values;
            changed
        };
        if changed {
            reapply(app, "etcd").await;
        }
        *delay = BACKOFF_MIN;
        store.changed_after(revision).await?;
    }
}

/// Reads every layer again and applies the result, or refuses it with the reason.
pub async fn reapply(app: &Arc<App>, cause: &str) {
    // Plugin reloads read the config too: one at a time.
    let _one_at_a_time = app.reload_lock.lock().await;
    let store = app.live.store.lock().expect("store lock").clone();
    let outcome = match app.live.source.load(&store) {
        Ok(layered) => apply(app, layered).await,
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(true) => tracing::info!(%cause, "config change applied"),
        Ok(false) => app.live.set_error(None),
        Err(reason) => {
            tracing::error!(%cause, %reason, "config change refused: the running config stays");
            app.live.set_error(Some(reason));
        }
    }
}

/// The grants of one plugin that loading checks (its values are read per request).
fn checked_grants(config: &Config, name: &str) -> serde_json::Value {
    let mut grants = config.plugin_config(name);
    grants.config.clear();
    grants.secrets.clear();
    serde_json::json!({ "grants": grants, "limits": config.limits_for(name) })
}

/// Puts `layered` in force; `Ok(false)` when nothing changed.
async fn apply(app: &Arc<App>, layered: Layered) -> Result<bool, String> {
    let (config, pending_restart) = app.live.keep_restart_only(layered.config);
    let running = app.current_config();
    let as_json = |c: &Config| serde_json::to_value(c).unwrap_or_default();
    if as_json(&config) == as_json(&running) && pending_restart == app.live.status().pending_restart
    {
        return Ok(false);
    }
    // A loaded plugin whose grants or limits change is validated again against the new
    // ones; if any would be refused (it imports what is no longer granted, or asks more
    // memory than a slot), the whole change is.
    let config = Arc::new(config);
    let mut revalidated = Vec::new();
    let mut problems = Vec::new();
    for plugin in app.plugins.all() {
        if checked_grants(&running, &plugin.name) == checked_grants(&config, &plugin.name) {
            continue;
        }
        let loading = {
            let (app, config, plugin) = (app.clone(), config.clone(), plugin.clone());
            tokio::task::spawn_blocking(move || {
                let bytes = std::fs::read(&plugin.source)?;
                Ok::<_, std::io::Error>(Plugin::load(
                    &app.runtime,
                    &config,
                    &plugin.name,
                    &plugin.source,
                    &bytes,
                ))
            })
        };
        match loading.await.map_err(|e| e.to_string())? {
            Ok(Ok(reloaded)) => revalidated.push(Arc::new(reloaded)),
            Ok(Err(e)) => problems.push(format!("plugin {}: {e}", plugin.name)),
            Err(e) => problems.push(format!("plugin {}: cannot read its file: {e}", plugin.name)),
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "the change would refuse loaded plugins:\n  - {}",
            problems.join("\n  - ")
        ));
    }
    if !pending_restart.is_empty() {
        tracing::warn!(keys = ?pending_restart, "config changed in sections that only a restart applies");
    }
    app.live
        .store((*config).clone(), layered.origins, pending_restart);
    app.breakers.apply(&config);
    app.router.store(Arc::new(Router::new(&config.route)));
    for plugin in revalidated {
        tracing::info!(plugin = %plugin.name, "plugin grants changed: revalidated");
        app.plugins.install(plugin);
    }
    app.sync_registry();
    // A plugin refused under the old grants may load under the new ones: look again (after
    // this change, which holds the reload lock).
    let refused = app.plugins.refused_names();
    if !refused.is_empty() {
        for name in &refused {
            app.plugins.forget_refusal(name);
        }
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::plugins::reload::reload(&app).await {
                tracing::error!(error = %e, "cannot read the plugins folder");
            }
        });
    }
    Ok(true)
}
