//! Checking a whole config: every section's own problems, the problems between sections,
//! and every `[plugin.<name>]` table as each capability reads it, all at once, each with
//! its fix.

use serde::Deserialize;

use super::Config;
use crate::capability::{Imports, PluginSpec};
use crate::runtime::{
    Capabilities, LimitsConfig, LimitsOverrides, known_plugin_keys, runtime_key_problems,
};
use crate::settings::PluginSection;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Limits {
    limits: LimitsOverrides,
}

/// The limits of `section`'s plugin: its own over `[plugins.limits]`.
pub(super) fn limits_of(config: &Config, name: &str, section: &PluginSection) -> LimitsConfig {
    let own: Limits = section.read(name, &["limits"]).unwrap_or_default();
    own.limits.over(config.plugins.limits)
}

impl Config {
    /// Every problem of the config, each with its fix; empty when it is valid.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = self.capabilities.problems();
        problems.extend(self.between_sections());
        problems.extend(self.server.problems());
        problems.extend(self.breaker.problems());
        problems.extend(crate::front::router::problems(&self.route));
        problems.extend(self.front.problems());
        problems.extend(self.admin.problems());
        problems.extend(self.login_limit.problems());
        problems.extend(self.cluster.problems());
        problems.extend(self.plugins.problems());
        for (name, section) in &self.plugin {
            problems.extend(self.plugin_problems(name, section));
        }
        problems
    }

    /// What one section asks of another.
    fn between_sections(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.server.body_limit > self.front.max_body_bytes_per_connection {
            problems.push(
                "[server] body_limit: a body that large could never be buffered; raise [front] max_body_bytes_per_connection (and max_body_bytes_buffered) or lower body_limit"
                    .into(),
            );
        }
        if !self.server.admin.ip().is_loopback() && self.admin.token.is_none() {
            problems.push(format!(
                "[server] admin = {}: an admin listener off loopback needs [admin] token (MICRO_API__ADMIN__TOKEN, 16+ characters), or bind it to 127.0.0.1",
                self.server.admin
            ));
        }
        if self.capabilities.registry.backend == crate::registry::RegistryBackend::Etcd {
            if self.server.rpc.is_none() {
                problems.push(
                    "[server] rpc: the etcd registry needs an rpc listener other nodes can call (or --rpc ADDR)"
                        .into(),
                );
            }
            if self.cluster.secret.as_ref().is_none_or(|s| s.len() < 16) {
                problems.push(
                    "[cluster] secret: nodes authenticate each other with a shared secret of 16+ bytes (MICRO_API__CLUSTER__SECRET)"
                        .into(),
                );
            }
        }
        problems
    }

    /// The problems of one `[plugin.<name>]` table: keys nobody reads, limits, and what
    /// each capability finds in its own keys. No component is known here, so imports are
    /// not checked: loading does that.
    fn plugin_problems(&self, name: &str, section: &PluginSection) -> Vec<String> {
        let known: Vec<&str> = known_plugin_keys().collect();
        let mut problems: Vec<String> = section
            .keys()
            .filter(|key| !known.contains(key))
            .map(|key| {
                format!(
                    "[plugin.{name}] {key:?} is not a key of a plugin's table; the keys are {}",
                    known.join(", ")
                )
            })
            .collect();
        problems.extend(runtime_key_problems(name, section));
        // A memory limit above the pool's slot is refused per plugin, at load.
        problems.extend(limits_of(self, name, section).problems(&format!("[plugin.{name}]")));
        let spec = PluginSpec {
            name,
            world: None,
            section,
            imports: &Imports::default(),
        };
        if let Err(more) = Capabilities::configure(&self.capabilities, &spec) {
            problems.extend(more);
        }
        problems
    }
}
