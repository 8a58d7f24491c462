//! Keeping the plugin table in step with the plugins folder, while the host serves.
//!
//! A reload scans the folder and, per `.wasm` file, compares its content hash with the
//! version served: a new or changed file is compiled off the request path (on the blocking
//! pool), validated, and swapped in; a refused one is logged and listed with its reason
//! while the previous version keeps serving; a deleted one is unloaded (requests in flight
//! finish on it). Reloads run one at a time and are triggered by the folder watcher
//! (`notify`, debounced), SIGHUP, `POST /admin/plugins/reload`, and at start.
//!
//! A copy in progress is never loaded: the documented way to deploy is write-then-rename,
//! but a plain `cp` works too, because a file is only read once it has stayed unchanged for
//! `[plugins] settle_ms`, and a recently written file that does not parse yet is retried
//! rather than refused. Hidden files (editor swap files, `.x.tmp`, Kubernetes' `..data`)
//! are not plugins; symlinks are followed, so a Kubernetes volume update (the `..data`
//! link swapped) is seen like any change.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{LoadError, Plugin, plugin_name, version_of};
use crate::app::App;
use crate::telemetry::metrics::METRICS;

/// A file written this recently that does not parse is taken for a copy in progress.
const IN_PROGRESS_WINDOW: Duration = Duration::from_secs(2);

/// What one reload did, for the log and the admin API.
#[derive(Debug, Default, Serialize)]
pub struct ReloadReport {
    pub loaded: Vec<String>,
    pub unchanged: Vec<String>,
    pub refused: Vec<String>,
    pub unloaded: Vec<String>,
    /// Files still being written: the watcher looks again shortly.
    pub pending: Vec<String>,
}

/// The candidate plugin files of `dir`: `(name, path)`, hidden files skipped.
fn candidates(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.') || n.ends_with('~'));
        if hidden || !path.is_file() {
            continue;
        }
        if let Some(name) = plugin_name(&path) {
            found.push((name, path));
        }
    }
    found.sort();
    Ok(found)
}

enum Read {
    Stable(Vec<u8>),
    /// Still changing, or gone between the scan and the read.
    Unsettled,
}

/// Reads `path` once it has not changed for `settle`.
async fn read_settled(path: &Path, settle: Duration) -> Read {
    let stamp = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    };
    let Some(before) = stamp(path) else {
        return Read::Unsettled;
    };
    let age = before
        .1
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    if age < settle {
        tokio::time::sleep(settle - age).await;
        if stamp(path) != Some(before) {
            return Read::Unsettled;
        }
    }
    match tokio::fs::read(path).await {
        Ok(bytes) if bytes.len() as u64 == before.0 => Read::Stable(bytes),
        _ => Read::Unsettled,
    }
}

fn recently_written(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age < IN_PROGRESS_WINDOW)
}

/// Brings the plugin table in line with the plugins folder.
pub async fn reload(app: &Arc<App>) -> std::io::Result<ReloadReport> {
    let _one_at_a_time = app.reload_lock.lock().await;
    let config = &app.config;
    let dir = &config.plugins.dir;
    std::fs::create_dir_all(dir)?;
    let settle = Duration::from_millis(config.plugins.settle_ms);
    let mut report = ReloadReport::default();
    let files = candidates(dir)?;
    let present: HashSet<&str> = files.iter().map(|(name, _)| name.as_str()).collect();

    for (name, path) in &files {
        let bytes = match read_settled(path, settle).await {
            Read::Stable(bytes) => bytes,
            Read::Unsettled => {
                report.pending.push(name.clone());
                continue;
            }
        };
        let version = version_of(&bytes);
        if app.plugins.get(name).is_some_and(|p| p.version == version) {
            report.unchanged.push(name.clone());
            continue;
        }
        if app.plugins.refused_version(name).as_deref() == Some(version.as_str()) {
            report.refused.push(name.clone());
            continue;
        }
        let started = std::time::Instant::now();
        let loading = {
            let app = app.clone();
            let (name, path) = (name.clone(), path.clone());
            tokio::task::spawn_blocking(move || {
                Plugin::load(&app.runtime, &app.config, &name, &path, &bytes)
            })
        };
        match loading.await.expect("plugin loading task") {
            Ok(plugin) => {
                let plugin = Arc::new(plugin);
                let replaced = app.plugins.install(plugin.clone());
                if let Some(old) = &replaced
                    && config.plugins.probation_requests > 0
                {
                    plugin.start_probation(config.plugins.probation_requests);
                    tracing::info!(
                        plugin = %name, version = %plugin.version, previous = %old.version,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "plugin updated"
                    );
                } else {
                    tracing::info!(
                        plugin = %name, version = %plugin.version, world = ?plugin.world,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "plugin loaded"
                    );
                }
                report.loaded.push(name.clone());
                METRICS.reload("succeeded");
            }
            Err(LoadError::Compile(_)) if recently_written(path) => {
                // Most likely a `cp` still writing: look again once it settles.
                report.pending.push(name.clone());
            }
            Err(e) => {
                let serving = app.plugins.get(name).map(|p| p.version.clone());
                tracing::error!(
                    plugin = %name, path = %path.display(), version = %version,
                    still_serving = ?serving, reason = %e,
                    "plugin refused"
                );
                app.plugins.refuse(name, &version, e.to_string());
                report.refused.push(name.clone());
                METRICS.reload("refused");
            }
        }
    }

    for plugin in app.plugins.all() {
        if !present.contains(plugin.name.as_str()) {
            app.plugins.remove(&plugin.name);
            tracing::info!(plugin = %plugin.name, version = %plugin.version, "plugin unloaded: its file is gone");
            report.unloaded.push(plugin.name.clone());
        }
    }
    for name in app.plugins.refused_names() {
        if !present.contains(name.as_str()) {
            app.plugins.forget_refusal(&name);
        }
    }
    app.sync_registry();
    Ok(report)
}

/// Reloads whenever the plugins folder changes or SIGHUP arrives, until the host stops.
pub fn watch(app: Arc<App>) -> anyhow::Result<()> {
    use notify::Watcher;
    let (changed, mut changes) = tokio::sync::mpsc::channel::<()>(1);
    let on_change = changed.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // A full channel already means "reload soon".
            let _ = on_change.try_send(());
        }
    })?;
    if app.config.plugins.watch {
        watcher.watch(&app.config.plugins.dir, notify::RecursiveMode::NonRecursive)?;
    }
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while let Some(()) = hangup.recv().await {
            tracing::info!("SIGHUP: reloading plugins");
            let _ = changed.try_send(());
        }
    });
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        let debounce = Duration::from_millis(app.config.plugins.settle_ms.max(20));
        while changes.recv().await.is_some() {
            // Let a burst of events (a copy, an editor's save) end before looking.
            tokio::time::sleep(debounce).await;
            while changes.try_recv().is_ok() {}
            loop {
                match reload(&app).await {
                    Ok(report) if !report.pending.is_empty() => {
                        tokio::time::sleep(debounce * 2).await;
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the plugins folder");
                        break;
                    }
                }
            }
        }
    });
    Ok(())
}
