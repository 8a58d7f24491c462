//! The plugins currently served, and their history.
//!
//! Readers (every request) load an immutable snapshot through `arc-swap`: no lock on the
//! request path, and a request keeps the `Arc<Plugin>` it started with, so the version it
//! began on serves it to the end (body streaming included) whatever is swapped meanwhile.
//! Writers (reloads, rollbacks) are serialized by the history lock and publish a new
//! snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, MutexGuard};

use crate::runtime::Plugin;

/// Why a file was refused, for the admin API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Refusal {
    pub version: String,
    pub reason: String,
    pub at: u64,
}

/// An automatic or manual rollback, for the admin API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rollback {
    pub from: String,
    pub to: String,
    pub reason: String,
    pub at: u64,
}

#[derive(Default)]
struct History {
    previous: HashMap<String, Arc<Plugin>>,
    refused: HashMap<String, Refusal>,
    rollbacks: HashMap<String, Rollback>,
}

#[derive(Default)]
pub struct PluginTable {
    current: ArcSwap<HashMap<String, Arc<Plugin>>>,
    history: Mutex<History>,
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("no plugin called {0} is loaded")]
    NotLoaded(String),
    #[error("{0} has no previous version to roll back to")]
    NoPrevious(String),
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl PluginTable {
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.current.load().get(name).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Plugin>> {
        let mut all: Vec<_> = self.current.load().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    fn history(&self) -> MutexGuard<'_, History> {
        self.history.lock()
    }

    fn publish(&self, change: impl FnOnce(&mut HashMap<String, Arc<Plugin>>)) {
        let mut next = HashMap::clone(&self.current.load());
        change(&mut next);
        self.current.store(Arc::new(next));
    }

    /// Serves `plugin` from now on; the version it replaces becomes its previous one.
    pub fn install(&self, plugin: Arc<Plugin>) -> Option<Arc<Plugin>> {
        let mut history = self.history();
        let name = plugin.name.to_string();
        let mut replaced = None;
        self.publish(|map| replaced = map.insert(name.clone(), plugin));
        history.refused.remove(&name);
        if let Some(old) = &replaced {
            old.retire();
            history.previous.insert(name, old.clone());
        }
        replaced
    }

    /// Stops serving `name` (its file is gone); requests in flight finish on it.
    pub fn remove(&self, name: &str) -> Option<Arc<Plugin>> {
        let mut history = self.history();
        let mut removed = None;
        self.publish(|map| removed = map.remove(name));
        history.previous.remove(name);
        history.refused.remove(name);
        if let Some(old) = &removed {
            old.retire();
        }
        removed
    }

    /// Puts the previous version of `name` back; the current one becomes the previous.
    pub fn rollback(&self, name: &str, reason: &str) -> Result<Arc<Plugin>, RollbackError> {
        let mut history = self.history();
        let current = self
            .get(name)
            .ok_or_else(|| RollbackError::NotLoaded(name.into()))?;
        let previous = history
            .previous
            .remove(name)
            .ok_or_else(|| RollbackError::NoPrevious(name.into()))?;
        // The restored version is trusted: it already served.
        previous.probation.end();
        previous.reinstate();
        current.retire();
        self.publish(|map| {
            map.insert(name.to_string(), previous.clone());
        });
        history.rollbacks.insert(
            name.to_string(),
            Rollback {
                from: current.version.to_string(),
                to: previous.version.to_string(),
                reason: reason.to_string(),
                at: unix_now(),
            },
        );
        history.previous.insert(name.to_string(), current);
        Ok(previous)
    }

    pub fn refuse(&self, name: &str, version: &str, reason: String) {
        self.history().refused.insert(
            name.to_string(),
            Refusal {
                version: version.to_string(),
                reason,
                at: unix_now(),
            },
        );
    }

    /// Forgets the refusal of a file that is gone.
    pub fn forget_refusal(&self, name: &str) {
        self.history().refused.remove(name);
    }

    /// The refusal of `name`, if its last refused file had this version.
    pub fn refused_version(&self, name: &str) -> Option<String> {
        self.history().refused.get(name).map(|r| r.version.clone())
    }

    pub fn refused(&self) -> HashMap<String, Refusal> {
        self.history().refused.clone()
    }

    pub fn previous(&self, name: &str) -> Option<Arc<Plugin>> {
        self.history().previous.get(name).cloned()
    }

    pub fn last_rollback(&self, name: &str) -> Option<Rollback> {
        self.history().rollbacks.get(name).cloned()
    }

    /// Every plugin name that has a refusal but no loaded version.
    pub fn refused_names(&self) -> Vec<String> {
        self.history().refused.keys().cloned().collect()
    }
}
