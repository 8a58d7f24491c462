//! One breaker per command, created on first use from the `[breaker]` section in force.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use super::{Breaker, BreakerConfig, BreakerMetrics, BreakerSettings, BreakerStatus};

pub struct Breakers {
    config: ArcSwap<BreakerConfig>,
    by_command: Mutex<HashMap<String, Arc<Breaker>>>,
    metrics: Arc<BreakerMetrics>,
}

impl Breakers {
    pub fn new(config: BreakerConfig, metrics: BreakerMetrics) -> Self {
        Self {
            config: ArcSwap::from_pointee(config),
            by_command: Mutex::default(),
            metrics: Arc::new(metrics),
        }
    }

    /// Applies `config`: the next call of a command whose settings changed gets a new
    /// breaker with them (closed, its window empty); calls in flight finish on the old one.
    pub fn apply(&self, config: &BreakerConfig) {
        let mut map = self.by_command.lock();
        self.config.store(Arc::new(config.clone()));
        for (command, breaker) in map.iter_mut() {
            let settings = config.settings(command);
            if breaker.settings() != settings {
                tracing::info!(%command, ?settings, "breaker settings changed");
                *breaker = Arc::new(Breaker::new(
                    command.clone(),
                    settings,
                    self.metrics.clone(),
                ));
            }
        }
    }

    /// The settings `command` would get now.
    pub fn settings(&self, command: &str) -> BreakerSettings {
        self.config.load().settings(command)
    }

    pub fn get(&self, command: &str) -> Arc<Breaker> {
        let mut map = self.by_command.lock();
        if let Some(breaker) = map.get(command) {
            return breaker.clone();
        }
        let breaker = Arc::new(Breaker::new(
            command,
            self.settings(command),
            self.metrics.clone(),
        ));
        map.insert(command.to_string(), breaker.clone());
        breaker
    }

    pub fn statuses(&self) -> Vec<BreakerStatus> {
        let map = self.by_command.lock();
        let mut all: Vec<_> = map.values().map(|b| b.status()).collect();
        all.sort_by(|a, b| a.command.cmp(&b.command));
        all
    }
}
