//! `config.toml`: one schema for the whole host, and the `config` capability beside it.
//!
//! Layers, later wins: built-in defaults < `config.toml` < environment variables named
//! `MICRO_API__SECTION__KEY` (double underscore between levels, so test variables such as
//! `MICRO_API_TEST_MYSQL_URL` never collide). After parsing, [`Config::validate`] checks the
//! whole file and reports every problem at once, each with how to fix it.

pub mod host;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("{path} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub plugins: PluginsConfig,
    pub registry: RegistryConfig,
    pub auth: AuthConfig,
    pub telemetry: TelemetryConfig,
    /// `[breaker.default]` and `[breaker."<service>.<method>"]`.
    pub breaker: BTreeMap<String, BreakerOverrides>,
    /// `[[route]]`: which HTTP plugin serves which path.
    pub route: Vec<RouteConfig>,
    /// `[plugin.<name>]`: what each plugin is granted, and its limits.
    pub plugin: BTreeMap<String, PluginConfig>,
    /// Folder for the SQLite database, the dev signing key and the compile cache.
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub body_limit: usize,
    /// This node's name in the registry.
    pub node_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://...`, `mysql://...` or `postgres://...`; empty: SQLite in `data_dir`.
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
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

/// The pooling allocator's size: every concurrent instance (requests in flight, nested rpc
/// callees, old and new versions during a reload) takes a slot.
#[derive(Debug, Clone, Copy, Deserialize)]
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

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RegistryBackend {
    Memory,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    pub backend: RegistryBackend,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The token signing key itself (better from `MICRO_API__AUTH__SIGNING_KEY`).
    pub signing_key: Option<String>,
    /// A file holding the key; empty: `<data_dir>/signing.key`, created at first start.
    pub key_file: PathBuf,
    pub issuer: String,
    pub audience: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// A `tracing` filter such as `info` or `micro_api=debug,info`.
    pub log_level: String,
}

/// Hystrix settings of one command; unset fields come from `[breaker.default]`.
#[derive(Debug, Clone, Default, Deserialize)]
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A path such as `/user/login` or `/hello/{name}`; `/{*rest}` matches the remainder.
    pub path: String,
    /// Allowed methods; empty: any.
    #[serde(default)]
    pub methods: Vec<String>,
    pub plugin: String,
}

/// What one plugin may use (deny by default) and how much.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// Services this plugin may call through rpc.
    pub rpc: Vec<String>,
    /// Whether it may use the database.
    pub sql: bool,
    /// Whether it may hash/verify passwords and sign/verify tokens.
    pub crypto: bool,
    /// Values it can read through the `config` import.
    pub config: BTreeMap<String, String>,
    /// Environment variables it sees (none otherwise).
    pub env: BTreeMap<String, String>,
    /// Outbound HTTP destinations it may call, as `scheme://host:port` (`*` for any port);
    /// loopback and link-local addresses only when a pattern names them.
    pub http: Vec<String>,
    /// Its limits; unset ones come from `[plugins.limits]`.
    pub limits: LimitsOverrides,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Linear memory a single instance may grow to, in MiB.
    pub memory_mb: u64,
    /// Wall-clock budget of one invocation (an HTTP request, or an rpc call's own share).
    pub deadline_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsOverrides {
    pub memory_mb: Option<u64>,
    pub deadline_ms: Option<u64>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            admin: ([127, 0, 0, 1], 9090).into(),
            body_limit: 1024 * 1024,
            node_id: "node-1".into(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 10,
        }
    }
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

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            memory_mb: 64,
            deadline_ms: 5000,
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            backend: RegistryBackend::Memory,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            signing_key: None,
            key_file: PathBuf::new(),
            issuer: "micro-api".into(),
            audience: "micro-api".into(),
        }
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_level: "info".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            plugins: PluginsConfig::default(),
            registry: RegistryConfig::default(),
            auth: AuthConfig::default(),
            telemetry: TelemetryConfig::default(),
            breaker: BTreeMap::new(),
            route: Vec::new(),
            plugin: BTreeMap::new(),
            data_dir: "data".into(),
        }
    }
}

/// Upper bound of `[plugins.pool] memory_mb`: the pool reserves this much address space
/// per slot.
pub const MAX_MEMORY_MB: u64 = 4096;

impl Config {
    /// Reads `path` (defaults only when it is `None`), applies the environment, resolves
    /// relative paths against the file's folder, and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let shown = path.map_or_else(|| PathBuf::from("<defaults>"), Path::to_path_buf);
        let mut doc = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse {
                        path: shown.clone(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            if let Some(key) = name.strip_prefix(ENV_PREFIX) {
                apply_env_override(&mut doc, &name, key, &value)?;
            }
        }
        let mut config: Config =
            Config::deserialize(toml::Value::Table(doc)).map_err(|e| ConfigError::Parse {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        let base = path
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        config.resolve_paths(&base);
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: shown,
                problems,
            })
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.data_dir);
        resolve(&mut self.plugins.dir);
        if self.plugins.cache_dir.as_os_str().is_empty() {
            self.plugins.cache_dir = self.data_dir.join("cache");
        } else {
            resolve(&mut self.plugins.cache_dir);
        }
        if self.auth.key_file.as_os_str().is_empty() {
            self.auth.key_file = self.data_dir.join("signing.key");
        } else {
            resolve(&mut self.auth.key_file);
        }
        if self.database.url.is_empty() {
            self.database.url = format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("micro-api.db").display()
            );
        }
    }

    /// Every problem of the file, each with its fix; empty when it is valid.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let db = &self.database.url;
        if !["sqlite:", "mysql:", "mariadb:", "postgres:", "postgresql:"]
            .iter()
            .any(|scheme| db.starts_with(scheme))
        {
            problems.push(format!(
                "[database] url must start with sqlite:, mysql: or postgres: (got {:?})",
                scheme_of(db)
            ));
        }
        if self.server.body_limit == 0 {
            problems.push("[server] body_limit must be at least 1 byte".into());
        }
        for (name, b) in &self.breaker {
            let s = BreakerSettings::default().overridden_by(b);
            let at = format!("[breaker.{name:?}]");
            if name != "default" && !name.contains('.') {
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
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.route.iter().enumerate() {
            let at = format!("[[route]] #{} ({})", i + 1, r.path);
            if let Err(e) = crate::front::router::PathPattern::parse(&r.path) {
                problems.push(format!("{at}: {e}"));
            }
            for m in &r.methods {
                if http::Method::from_bytes(m.as_bytes()).is_err() {
                    problems.push(format!("{at}: {m:?} is not an HTTP method"));
                }
            }
            if r.plugin.is_empty() {
                problems.push(format!("{at}: plugin = \"<name>\" is missing"));
            }
            if !seen.insert(&r.path) {
                problems.push(format!(
                    "{at}: the path is routed twice; merge the two [[route]] entries"
                ));
            }
        }
        // A memory limit above the pool's slot is refused per plugin, at load.
        for (name, p) in &self.plugin {
            let limits = self.limits_for_config(p);
            if limits.memory_mb == 0 {
                problems.push(format!(
                    "[plugin.{name}] limits.memory_mb must be at least 1"
                ));
            }
            if limits.deadline_ms == 0 {
                problems.push(format!(
                    "[plugin.{name}] limits.deadline_ms must be at least 1"
                ));
            }
            for pattern in &p.http {
                if let Err(e) = crate::outbound::Pattern::parse(pattern) {
                    problems.push(format!("[plugin.{name}] http: {pattern:?}: {e}"));
                }
            }
        }
        let pool = self.plugins.pool;
        if pool.memory_mb == 0 || pool.memory_mb > MAX_MEMORY_MB {
            problems.push(format!(
                "[plugins.pool] memory_mb must be between 1 and {MAX_MEMORY_MB}"
            ));
        }
        if pool.instances < 2 {
            problems.push("[plugins.pool] instances must be at least 2".into());
        }
        problems
    }

    /// The breaker settings of `command` (`service.method`).
    pub fn breaker_settings(&self, command: &str) -> BreakerSettings {
        let base = self
            .breaker
            .get("default")
            .map_or_else(BreakerSettings::default, |d| {
                BreakerSettings::default().overridden_by(d)
            });
        self.breaker
            .get(command)
            .map_or(base, |o| base.overridden_by(o))
    }

    /// The grants and limits of the plugin called `name` (empty grants when unlisted).
    pub fn plugin_config(&self, name: &str) -> PluginConfig {
        self.plugin.get(name).cloned().unwrap_or_default()
    }

    pub fn limits_for(&self, name: &str) -> LimitsConfig {
        self.limits_for_config(&self.plugin_config(name))
    }

    fn limits_for_config(&self, p: &PluginConfig) -> LimitsConfig {
        let d = self.plugins.limits;
        LimitsConfig {
            memory_mb: p.limits.memory_mb.unwrap_or(d.memory_mb),
            deadline_ms: p.limits.deadline_ms.unwrap_or(d.deadline_ms),
        }
    }
}

/// The scheme of a URL, never its credentials (config errors are logged).
fn scheme_of(url: &str) -> &str {
    url.split_once(':').map_or("", |(scheme, _)| scheme)
}

/// Sets `section.key` in the document from `MICRO_API__SECTION__KEY=value`. The value is
/// read as a TOML value when it is one (numbers, booleans, arrays) and as a string otherwise.
fn apply_env_override(
    doc: &mut toml::Table,
    name: &str,
    key: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
    if path.iter().any(String::is_empty) {
        return Err(ConfigError::Env {
            name: name.into(),
            message: "empty section or key; use MICRO_API__SECTION__KEY".into(),
        });
    }
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.into()));
    let (last, sections) = path.split_last().expect("split of a non-empty key");
    let mut table = doc;
    for section in sections {
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| ConfigError::Env {
            name: name.into(),
            message: format!("{section} is not a section"),
        })?;
    }
    table.insert(last.clone(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let b = c.breaker_settings("auth.MakeAccessToken");
        assert_eq!(
            (b.timeout_ms, b.max_concurrent, b.error_percent),
            (1000, 100, 50)
        );
        assert!(c.database.url.starts_with("sqlite://"));
    }

    #[test]
    fn command_overrides_default_overrides_builtin() {
        let c = load(
            "[breaker.default]\ntimeout_ms = 300\n[breaker.\"auth.MakeAccessToken\"]\nmax_concurrent = 7\n",
            &[],
        )
        .unwrap();
        let b = c.breaker_settings("auth.MakeAccessToken");
        assert_eq!((b.timeout_ms, b.max_concurrent), (300, 7));
        assert_eq!(c.breaker_settings("user.Get").max_concurrent, 100);
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
        assert_eq!(c.auth.signing_key.as_deref(), Some("s3cret"));
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
    fn unknown_keys_are_refused() {
        let err = load("[server]\nlisten_addr = \"127.0.0.1:1\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
    }
}
