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
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::Lifecycle;
use crate::runtime::{LoadError, plugin_name, version_of};

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

impl Lifecycle {
    /// Brings the plugin table in line with the plugins folder.
    pub async fn reload(&self) -> std::io::Result<ReloadReport> {
        let _one_at_a_time = self.lock.lock().await;
        let settings = self.settings();
        let dir = &settings.plugins.dir;
        std::fs::create_dir_all(dir)?;
        let settle = Duration::from_millis(settings.plugins.settle_ms);
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
            if self.table.get(name).is_some_and(|p| *p.version == *version) {
                report.unchanged.push(name.clone());
                continue;
            }
            if self.table.refused_version(name).as_deref() == Some(version.as_str()) {
                report.refused.push(name.clone());
                continue;
            }
            // The folder still holds a version that was rolled back: it stays out until a
            // different file is deployed, or any later reload would bring it back.
            if self
                .table
                .last_rollback(name)
                .is_some_and(|rollback| rollback.from == version)
            {
                report.unchanged.push(name.clone());
                continue;
            }
            let started = std::time::Instant::now();
            match self.load(name, path, bytes).await {
                Ok(plugin) => {
                    let replaced = self.table.install(plugin.clone());
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    let probation = settings.plugins.probation_requests;
                    if let Some(old) = &replaced
                        && probation > 0
                    {
                        plugin.probation.start(probation);
                        tracing::info!(
                            plugin = %name, version = %plugin.version, previous = %old.version,
                            elapsed_ms, "plugin updated"
                        );
                    } else {
                        tracing::info!(
                            plugin = %name, version = %plugin.version, world = ?plugin.world,
                            elapsed_ms, "plugin loaded"
                        );
                    }
                    report.loaded.push(name.clone());
                    self.count("succeeded");
                }
                Err(LoadError::Compile(_)) if recently_written(path) => {
                    // Most likely a `cp` still writing: look again once it settles.
                    report.pending.push(name.clone());
                }
                Err(e) => {
                    let serving = self.table.get(name).map(|p| p.version.clone());
                    tracing::error!(
                        plugin = %name, path = %path.display(), version = %version,
                        still_serving = ?serving, reason = %e,
                        "plugin refused"
                    );
                    self.table.refuse(name, &version, e.to_string());
                    report.refused.push(name.clone());
                    self.count("refused");
                }
            }
        }

        for plugin in self.table.all() {
            if !present.contains(&*plugin.name) {
                self.table.remove(&plugin.name);
                tracing::info!(plugin = %plugin.name, version = %plugin.version, "plugin unloaded: its file is gone");
                report.unloaded.push(plugin.name.to_string());
            }
        }
        for name in self.table.refused_names() {
            if !present.contains(name.as_str()) {
                self.table.forget_refusal(&name);
            }
        }
        self.changed();
        Ok(report)
    }
}
