//! `[breaker.default]` and `[breaker."<command>"]`: the seed's Hystrix settings, and how a
//! command's own overrides fall back to the default's, then to the built-in values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Hystrix settings of one command; unset fields come from `[breaker.default]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerOverrides {
    pub timeout_ms: Option<u64>,
    pub max_concurrent: Option<u32>,
    pub error_percent: Option<u32>,
    pub volume_threshold: Option<u32>,
    pub sleep_window_ms: Option<u64>,
}

/// The effective settings of one breaker command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    pub timeout_ms: u64,
    pub max_concurrent: u32,
    pub error_percent: u32,
    pub volume_threshold: u32,
    pub sleep_window_ms: u64,
}

impl Default for BreakerSettings {
    /// The seed's hystrix values.
    fn default() -> Self {
        Self {
            timeout_ms: 1000,
            max_concurrent: 100,
            error_percent: 50,
            volume_threshold: 20,
            sleep_window_ms: 5000,
        }
    }
}

impl BreakerSettings {
    fn overridden_by(self, o: &BreakerOverrides) -> Self {
        Self {
            timeout_ms: o.timeout_ms.unwrap_or(self.timeout_ms),
            max_concurrent: o.max_concurrent.unwrap_or(self.max_concurrent),
            error_percent: o.error_percent.unwrap_or(self.error_percent),
            volume_threshold: o.volume_threshold.unwrap_or(self.volume_threshold),
            sleep_window_ms: o.sleep_window_ms.unwrap_or(self.sleep_window_ms),
        }
    }

    /// The breaker's rule: with at least `volume_threshold` outcomes of which
    /// `error_percent` failed, the callee is judged unhealthy.
    pub fn trips(&self, total: u32, errors: u32) -> bool {
        total >= self.volume_threshold && total > 0 && errors * 100 >= self.error_percent * total
    }
}

/// The `[breaker]` section: overrides by command (`default` or `service.method`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct BreakerConfig(pub BTreeMap<String, BreakerOverrides>);

impl BreakerConfig {
    /// The settings of `command`: its overrides, then `default`'s, then the built-ins.
    pub fn settings(&self, command: &str) -> BreakerSettings {
        let base = self
            .0
            .get("default")
            .map_or_else(BreakerSettings::default, |d| {
                BreakerSettings::default().overridden_by(d)
            });
        self.0.get(command).map_or(base, |o| base.overridden_by(o))
    }

    /// Every problem of the section, each with its fix.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, b) in &self.0 {
            let s = BreakerSettings::default().overridden_by(b);
            let at = format!("[breaker.{name:?}]");
            if name != "default" && !name.contains('.') && !name.starts_with("http:") {
                problems.push(format!(
                    "{at}: a breaker is named \"default\" or \"<service>.<method>\""
                ));
            }
            if s.timeout_ms == 0 {
                problems.push(format!("{at} timeout_ms must be at least 1"));
            }
            if s.max_concurrent == 0 {
                problems.push(format!("{at} max_concurrent must be at least 1"));
            }
            if s.error_percent == 0 || s.error_percent > 100 {
                problems.push(format!(
                    "{at} error_percent must be between 1 and 100 (got {})",
                    s.error_percent
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> BreakerConfig {
        #[derive(Deserialize)]
        struct Doc {
            breaker: BreakerConfig,
        }
        toml::from_str::<Doc>(text).unwrap().breaker
    }

    #[test]
    fn command_overrides_default_overrides_builtin() {
        let c = parse(
            "[breaker.default]\ntimeout_ms = 300\n[breaker.\"auth.MakeAccessToken\"]\nmax_concurrent = 7\n",
        );
        let b = c.settings("auth.MakeAccessToken");
        assert_eq!((b.timeout_ms, b.max_concurrent), (300, 7));
        assert_eq!(c.settings("user.Get").max_concurrent, 100);
        let seed = BreakerConfig::default().settings("auth.MakeAccessToken");
        assert_eq!(
            (seed.timeout_ms, seed.max_concurrent, seed.error_percent),
            (1000, 100, 50)
        );
    }

    #[test]
    fn the_rule_needs_volume_and_percentage() {
        let s = BreakerSettings {
            volume_threshold: 4,
            error_percent: 50,
            ..BreakerSettings::default()
        };
        assert!(!s.trips(3, 3));
        assert!(s.trips(4, 2));
        assert!(!s.trips(5, 2));
        assert!(!s.trips(0, 0));
    }
}
