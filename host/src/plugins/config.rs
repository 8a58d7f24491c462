//! `[plugins]`: where components are deployed and how the folder is followed, the
//! instance pool and default limits (the runtime's), and a new version's probation.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::runtime::{LimitsConfig, PoolConfig};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// Where deployed `.wasm` components are read from.
    pub dir: PathBuf,
    /// Where compiled components are cached; empty: `<data_dir>/cache`.
    pub cache_dir: PathBuf,
    /// The default per-plugin limits.
    pub limits: LimitsConfig,
    /// The instance pool, sized at start (changing it needs a restart).
    pub pool: PoolConfig,
    /// Watch `dir` and apply changes without a restart.
    pub watch: bool,
    /// How long a new file must stay unchanged before it is loaded (a `cp` in progress).
    pub settle_ms: u64,
    /// After a swap, the new version's first N requests are judged by the breaker rules
    /// (`[breaker.default]`); if they fail too often, the previous version comes back.
    /// 0 turns automatic rollback off.
    pub probation_requests: u32,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            dir: "plugins/dist".into(),
            cache_dir: PathBuf::new(),
            limits: LimitsConfig::default(),
            pool: PoolConfig::default(),
            watch: true,
            settle_ms: 50,
            probation_requests: 20,
        }
    }
}

impl PluginsConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.pool.problems();
        problems.extend(self.limits.problems("[plugins.limits]"));
        problems
    }
}
