//! `[plugin.<name>] reuse`: whether an HTTP plugin's instances serve more than one request,
//! and how many. The semantics are `wasmtime serve`'s (and `ProxyHandler`'s): an instance
//! takes up to `requests` requests in its life, `concurrent` at once, and is dropped after
//! `idle_ms` without one. A WASI 0.3 component reuses by default (128 / 16 / 1000 ms, as
//! `wasmtime serve`); a WASI 0.2 one keeps a fresh instance per request unless its section
//! opts in, since serial reuse is not safe for every toolchain's output.

use serde::{Deserialize, Serialize};

/// What `reuse` may be written as: `false`, `true` (the defaults) or a table.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub(in crate::runtime) enum ReuseWritten {
    Switch(bool),
    Policy(ReuseOverrides),
}

/// The keys of a `reuse = { ... }` table; unset ones take the defaults.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(in crate::runtime) struct ReuseOverrides {
    requests: Option<u32>,
    concurrent: Option<u32>,
    idle_ms: Option<u64>,
    max_alive: Option<u32>,
}

/// How one plugin's instances are reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReusePolicy {
    /// Requests one instance serves in its life.
    pub requests: u32,
    /// Requests one instance serves at once (1 for a WASI 0.2 export, which cannot overlap,
    /// and for a component that imports micro-api's host interfaces, whose state is per
    /// request).
    pub concurrent: u32,
    /// How long an instance stays alive without a request.
    pub idle_ms: u64,
    /// Instances of this plugin alive at once; a request waits for one beyond it.
    pub max_alive: u32,
}

impl ReusePolicy {
    /// No reuse: what a WASI 0.3 plugin with `reuse = false` runs under (its handler is an
    /// `async func`, so it still goes through the reuse machinery, one request per instance).
    pub const ONE_REQUEST: Self = Self {
        requests: 1,
        concurrent: 1,
        idle_ms: 0,
        max_alive: u32::MAX,
    };
}

impl Default for ReusePolicy {
    fn default() -> Self {
        Self {
            requests: 128,
            concurrent: 16,
            idle_ms: 1000,
            max_alive: 8,
        }
    }
}

/// What the plugin's export and imports allow of a policy.
#[derive(Debug, Clone, Copy)]
pub(in crate::runtime) struct ReuseShape {
    /// It exports `wasi:http/handler@0.3` (async): reuse is the default, overlap allowed.
    pub asynchronous: bool,
    /// It imports a `micro-api:host` interface, whose state is prepared per request.
    pub imports_host: bool,
}

impl ReuseWritten {
    /// The policy in force for a plugin of `shape` (`None`: a fresh instance per request),
    /// or what is wrong with what `name`'s section wrote.
    pub fn resolve(
        written: Option<Self>,
        shape: ReuseShape,
        name: &str,
    ) -> Result<Option<ReusePolicy>, String> {
        let overrides = match written {
            None if shape.asynchronous => ReuseOverrides::default(),
            None | Some(Self::Switch(false)) => return Ok(None),
            Some(Self::Switch(true)) => ReuseOverrides::default(),
            Some(Self::Policy(overrides)) => overrides,
        };
        let defaults = ReusePolicy::default();
        let mut policy = ReusePolicy {
            requests: overrides.requests.unwrap_or(defaults.requests),
            concurrent: overrides.concurrent.unwrap_or(defaults.concurrent),
            idle_ms: overrides.idle_ms.unwrap_or(defaults.idle_ms),
            max_alive: overrides.max_alive.unwrap_or(defaults.max_alive),
        };
        let at = format!("[plugin.{name}] reuse");
        let mut problems = Vec::new();
        if policy.requests == 0 {
            problems.push(format!(
                "{at}.requests must be at least 1 (or `reuse = false`)"
            ));
        }
        if policy.concurrent == 0 {
            problems.push(format!("{at}.concurrent must be at least 1"));
        }
        if policy.max_alive == 0 {
            problems.push(format!("{at}.max_alive must be at least 1"));
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        if !shape.asynchronous || shape.imports_host {
            policy.concurrent = 1;
        }
        Ok(Some(policy))
    }
}
