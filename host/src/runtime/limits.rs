//! What one instance may use: `[plugins.limits]` (with `[plugin.<name>.limits]` overrides)
//! and the instance pool `[plugins.pool]` every instance takes a slot of.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Linear memory a single instance may grow to, in MiB.
    pub memory_mb: u64,
    /// Wall-clock budget of one invocation (an HTTP request, or an rpc call's own share).
    pub deadline_ms: u64,
    /// The most bytes the header fields of one HTTP message a guest builds may hold
    /// (wasmtime's `field_size_limit`), so a plugin can be held to what the front allows.
    pub field_bytes: usize,
}

/// wasmtime-wasi-http's own default `field_size_limit`.
const DEFAULT_FIELD_BYTES: usize = 128 * 1024;

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            memory_mb: 64,
            deadline_ms: 5000,
            field_bytes: DEFAULT_FIELD_BYTES,
        }
    }
}

/// One plugin's own limits; unset ones come from `[plugins.limits]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsOverrides {
    pub memory_mb: Option<u64>,
    pub deadline_ms: Option<u64>,
    pub field_bytes: Option<usize>,
}

impl LimitsOverrides {
    pub fn over(self, defaults: LimitsConfig) -> LimitsConfig {
        LimitsConfig {
            memory_mb: self.memory_mb.unwrap_or(defaults.memory_mb),
            deadline_ms: self.deadline_ms.unwrap_or(defaults.deadline_ms),
            field_bytes: self.field_bytes.unwrap_or(defaults.field_bytes),
        }
    }
}

impl LimitsConfig {
    /// The problems of these limits, as `at` names them.
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.memory_mb == 0 {
            problems.push(format!("{at} limits.memory_mb must be at least 1"));
        }
        if self.deadline_ms == 0 {
            problems.push(format!("{at} limits.deadline_ms must be at least 1"));
        }
        if self.field_bytes < 1024 {
            problems.push(format!("{at} limits.field_bytes must be at least 1024"));
        }
        problems
    }
}

/// Upper bound of `[plugins.pool] memory_mb`: the pool reserves this much address space
/// per slot.
pub const MAX_MEMORY_MB: u64 = 4096;

/// The pooling allocator's size: every concurrent instance (requests in flight, nested rpc
/// callees, old and new versions during a reload) takes a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Component instances alive at once.
    pub instances: u32,
    /// Largest linear memory of one instance, in MiB: no plugin's `memory_mb` may exceed it.
    pub memory_mb: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            instances: 1000,
            memory_mb: 256,
        }
    }
}

impl PoolConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.memory_mb == 0 || self.memory_mb > MAX_MEMORY_MB {
            problems.push(format!(
                "[plugins.pool] memory_mb must be between 1 and {MAX_MEMORY_MB}"
            ));
        }
        if self.instances < 2 {
            problems.push("[plugins.pool] instances must be at least 2".into());
        }
        problems
    }
}
