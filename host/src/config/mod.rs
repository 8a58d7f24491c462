//! `config.toml`: the host's whole schema, assembled from the sections each part owns.
//!
//! Every section lives with what reads it: `[database]` in `sql`, `[front]` in `front`,
//! `[breaker]` in `breaker`, and so on; each capability's section is flattened in from the
//! capability list. This module assembles them, reads the layers ([`load`]), checks the
//! whole ([`validate`]: every problem at once, each with its fix), and keeps the config in
//! force while it changes ([`live`], [`watch`], the etcd layer in [`etcd`]). It applies
//! nothing itself: the host does, from the top.

pub mod etcd;
pub mod layers;
pub mod live;
mod load;
mod process;
mod validate;
pub mod watch;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use etcd::ConfigStoreConfig;
pub use process::{AdminConfig, ServerConfig};

use crate::breaker::BreakerConfig;
use crate::front::FrontConfig;
use crate::front::login_limit::LoginLimitConfig;
use crate::front::router::RouteConfig;
use crate::node::ClusterConfig;
use crate::plugins::PluginsConfig;
use crate::runtime::{CapabilityConfigs, LimitsConfig};
use crate::settings::{PluginSection, PluginSections};

/// Prefix of environment variables that override `config.toml`.
pub const ENV_PREFIX: &str = "MICRO_API__";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML for micro-api: {message}")]
    Parse { path: PathBuf, message: String },
    /// A bad environment variable or etcd key (`name` says which).
    #[error("{name}: {message}")]
    Env { name: String, message: String },
    #[error("{path} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    /// `[plugins]`: the plugins folder, the instance pool, default limits, probation.
    pub plugins: PluginsConfig,
    /// `[cluster]`: how nodes call each other.
    pub cluster: ClusterConfig,
    /// `[front]`: timeouts and limits of the public front door.
    pub front: FrontConfig,
    /// `[admin]`: who may use the admin listener.
    pub admin: AdminConfig,
    /// `[login_limit]`: failed logins allowed per user name and per client address.
    pub login_limit: LoginLimitConfig,
    /// `[breaker.default]` and `[breaker."<service>.<method>"]`.
    pub breaker: BreakerConfig,
    /// `[[route]]`: which HTTP plugin serves which path.
    pub route: Vec<RouteConfig>,
    /// `[plugin.<name>]`: what each plugin is granted, and its limits.
    pub plugin: PluginSections,
    /// `[config_store]`: the etcd layer of the config, and watching for changes.
    pub config_store: ConfigStoreConfig,
    /// Folder for the SQLite database, the dev signing key and the compile cache.
    pub data_dir: PathBuf,
    /// Every capability's own section: `[database]`, `[registry]`, `[auth]`,
    /// `[telemetry]`, `[broker]`, `[wasi_config]`, ...
    #[serde(flatten)]
    pub capabilities: CapabilityConfigs,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            plugins: PluginsConfig::default(),
            cluster: ClusterConfig::default(),
            front: FrontConfig::default(),
            admin: AdminConfig::default(),
            login_limit: LoginLimitConfig::default(),
            breaker: BreakerConfig::default(),
            route: Vec::new(),
            plugin: PluginSections::new(),
            config_store: ConfigStoreConfig::default(),
            data_dir: "data".into(),
            capabilities: CapabilityConfigs::default(),
        }
    }
}

impl Config {
    /// The sections of the root itself (the capabilities' come from their list).
    pub const SECTIONS: &[&str] = &[
        "server",
        "plugins",
        "cluster",
        "front",
        "admin",
        "login_limit",
        "breaker",
        "route",
        "plugin",
        "config_store",
        "data_dir",
    ];

    /// Root sections that shape what was built at start: a change waits for a restart.
    /// (`plugins` is partly live: see `live`.)
    pub const RESTART_ONLY: &[&str] = &[
        "server",
        "cluster",
        "front",
        "admin",
        "login_limit",
        "config_store",
        "data_dir",
    ];

    /// The `[plugin.<name>]` table of `name` (empty when unlisted).
    pub fn plugin_section(&self, name: &str) -> PluginSection {
        self.plugin.get(name).cloned().unwrap_or_default()
    }

    /// The limits of the plugin called `name`: its own over `[plugins.limits]`.
    pub fn limits_for(&self, name: &str) -> LimitsConfig {
        validate::limits_of(self, name, &self.plugin_section(name))
    }

    /// What the plugin lifecycle reads of this config.
    pub fn plugin_settings(&self) -> crate::plugins::Settings {
        crate::plugins::Settings {
            plugins: self.plugins.clone(),
            sections: self.plugin.clone(),
            capabilities: self.capabilities.clone(),
            probation_rules: self.breaker.settings("default"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::router::RouteAuth;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        Config::load_with_env(
            Some(&path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_are_the_seed_values() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.admin.to_string(), "127.0.0.1:9090");
        let b = c.breaker.settings("auth.MakeAccessToken");
        assert_eq!(
            (b.timeout_ms, b.max_concurrent, b.error_percent),
            (1000, 100, 50)
        );
        assert!(c.capabilities.database.url.starts_with("sqlite://"));
    }

    #[test]
    fn environment_wins_over_the_file() {
        let c = load(
            "[server]\nbody_limit = 10\n",
            &[
                ("MICRO_API__SERVER__BODY_LIMIT", "20"),
                ("MICRO_API__AUTH__SIGNING_KEY", "s3cret"),
                ("MICRO_API_TEST_MYSQL_URL", "mysql://ignored"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.body_limit, 20);
        assert_eq!(c.capabilities.auth.signing_key.as_deref(), Some("s3cret"));
    }

    #[test]
    fn every_problem_is_listed() {
        let err = load(
            "[database]\nurl = \"oracle://x\"\n[breaker.default]\nerror_percent = 0\n[[route]]\npath = \"nope\"\nplugin = \"\"\n",
            &[],
        )
        .unwrap_err();
        let ConfigError::Invalid { problems, .. } = err else {
            panic!("expected Invalid, got {err}");
        };
        assert_eq!(problems.len(), 4, "{problems:#?}");
    }

    #[test]
    fn security_sections_are_read_and_checked() {
        let c = load(
            "[[route]]\npath = \"/p\"\nplugin = \"p\"\nauth = \"required\"\n[front]\nmax_connections = 7\n",
            &[("MICRO_API__ADMIN__TOKEN", "an-admin-token-of-some-length")],
        )
        .unwrap();
        assert_eq!(c.route[0].auth, RouteAuth::Required);
        assert_eq!(c.front.max_connections, 7);
        assert_eq!(c.front.header_read_timeout_ms, 10_000, "the rest defaulted");
        let token = c.admin.token.as_ref().unwrap();
        assert_eq!(token.expose(), "an-admin-token-of-some-length");
        // The token never shows in a debug print of the config (nor in a log of it).
        assert!(!format!("{c:?}").contains("an-admin-token"));

        let err = load(
            "[front]\nmax_header_bytes = 100\nidle_timeout_ms = 0\n[admin]\ntoken = \"short\"\n[login_limit]\nwindow_secs = 0\n[[route]]\npath = \"/p\"\nplugin = \"p\"\nauth = \"maybe\"\n",
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("maybe"), "{err}");
        let err = load(
            "[front]\nmax_header_bytes = 100\nidle_timeout_ms = 0\n[admin]\ntoken = \"short\"\n[login_limit]\nwindow_secs = 0\n",
            &[],
        )
        .unwrap_err();
        let ConfigError::Invalid { problems, .. } = err else {
            panic!("expected Invalid, got {err}");
        };
        assert_eq!(problems.len(), 4, "{problems:#?}");
        // An empty path turns the login limit off, and its other keys are not checked.
        assert!(load("[login_limit]\npath = \"\"\nmax_failures = 0\n", &[]).is_ok());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = load("[server]\nlisten_addr = \"127.0.0.1:1\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
    }
}

#[cfg(test)]
mod capability_sections {
    use super::Config;

    #[test]
    fn unknown_sections_and_plugin_keys_are_refused_with_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[databse]\nurl = \"sqlite::memory:\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("unknown section `databse`"), "{err}");
        assert!(err.contains("database"), "the known ones are listed: {err}");
        std::fs::write(&path, "[plugin.p]\nsqll = true\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("[plugin.p] \"sqll\" is not a key"), "{err}");
        std::fs::write(&path, "[wasi_config]\nsecrets_in_get_all = true\n[plugin.p]\nwasi_config = true\nsql = true\n").unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert!(c.capabilities.wasi_config.secrets_in_get_all);
    }
}

#[cfg(test)]
mod outbound_section {
    use super::Config;

    #[test]
    fn nameservers_are_addresses_and_the_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[outbound]\nnameservers = [\"127.0.0.1:5353\", \"10.0.0.53\", \"[::1]:53\"]\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.capabilities.outbound.nameservers.len(), 3);
        std::fs::write(
            &path,
            "[outbound]\nnameservers = [\"dns.example:53\", \"127.0.0.1:5353\", \"1.2.3.4:x\"]\n",
        )
        .unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("2 problem(s)"), "{err}");
        assert!(
            err.contains("\"dns.example:53\" is not an IP address"),
            "{err}"
        );
        assert!(err.contains("\"1.2.3.4:x\""), "{err}");
        std::fs::write(&path, "[outbound]\nnameserver = []\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("nameserver"), "{err}");
    }
}
