//! The bounded tables the login limiter counts in: failures within a sliding window and
//! attempts in progress, per key (a user name at an address, a user name, an address).
//! Apart from the limiter so that its policy reads on its own.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The failures of one key.
#[derive(Debug, Default)]
struct Entry {
    /// Times of the failures within the window, oldest first (at most `max` kept).
    failures: VecDeque<Instant>,
    /// Attempts let through and not answered yet.
    pending: u32,
    last_used: Option<Instant>,
}

/// One table of counts, bounded by `max_entries`: entries with nothing left in the window
/// go first, then the least recently used.
pub(super) struct Table<K> {
    entries: HashMap<K, Entry>,
    max: u32,
    max_entries: usize,
}

impl<K: Clone + Eq + Hash> Table<K> {
    pub(super) fn new(max: u32, max_entries: usize) -> Self {
        Self {
            entries: HashMap::new(),
            max,
            max_entries,
        }
    }

    /// How long `key` must wait, if its failures and its attempts in progress together
    /// reach `max` (in-flight guesses hold their place before their answers come back).
    pub(super) fn wait(&mut self, key: &K, now: Instant, window: Duration) -> Option<Duration> {
        let entry = self.entries.get_mut(key)?;
        expire(entry, now, window);
        if (entry.failures.len() as u32).saturating_add(entry.pending) < self.max {
            return None;
        }
        // The oldest failure leaving the window frees a place; attempts in progress alone
        // answer within a request's time.
        let wait = entry
            .failures
            .front()
            .map_or(Duration::from_secs(1), |oldest| {
                (*oldest + window).saturating_duration_since(now)
            });
        Some(wait.max(Duration::from_secs(1)))
    }

    /// Holds a place for an attempt in progress, until [`release`](Self::release).
    pub(super) fn hold(&mut self, key: &K, now: Instant, window: Duration) {
        self.entry(key, now, window).pending += 1;
    }

    fn entry(&mut self, key: &K, now: Instant, window: Duration) -> &mut Entry {
        if !self.entries.contains_key(key) && self.entries.len() >= self.max_entries {
            self.evict(now, window);
        }
        let entry = self.entries.entry(key.clone()).or_default();
        entry.last_used = Some(now);
        entry
    }

    /// Records a failure; only the last `max` are kept, which is all `wait` needs.
    pub(super) fn fail(&mut self, key: &K, now: Instant, window: Duration) {
        let max = self.max as usize;
        let entry = self.entry(key, now, window);
        entry.failures.push_back(now);
        while entry.failures.len() > max {
            entry.failures.pop_front();
        }
    }

    /// Forgets the failures of `key`.
    pub(super) fn clear(&mut self, key: &K) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.failures.clear();
        }
        self.forget_if_empty(key);
    }

    /// Ends an attempt in progress.
    pub(super) fn release(&mut self, key: &K) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.pending = entry.pending.saturating_sub(1);
        }
        self.forget_if_empty(key);
    }

    /// Keys tracked now.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(super) fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    fn forget_if_empty(&mut self, key: &K) {
        if self
            .entries
            .get(key)
            .is_some_and(|e| e.failures.is_empty() && e.pending == 0)
        {
            self.entries.remove(key);
        }
    }

    /// Makes room: forgets the entries with nothing left in the window, then, if that is
    /// not enough, the least recently used eighth of the idle ones. Entries with attempts
    /// in progress stay.
    fn evict(&mut self, now: Instant, window: Duration) {
        self.entries.retain(|_, entry| {
            expire(entry, now, window);
            !entry.failures.is_empty() || entry.pending > 0
        });
        if self.entries.len() < self.max_entries {
            return;
        }
        let mut idle: Vec<(Option<Instant>, K)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.pending == 0)
            .map(|(k, e)| (e.last_used, k.clone()))
            .collect();
        let count = (self.max_entries / 8).max(1).min(idle.len());
        if count == 0 {
            return;
        }
        idle.select_nth_unstable_by_key(count - 1, |(last, _)| *last);
        for (_, key) in idle.into_iter().take(count) {
            self.entries.remove(&key);
        }
    }
}

/// Drops the failures that have left the window.
fn expire(entry: &mut Entry, now: Instant, window: Duration) {
    while entry
        .failures
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        entry.failures.pop_front();
    }
}
