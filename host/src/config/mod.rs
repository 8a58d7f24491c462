//! `config.toml`: one schema for the whole host, and the `config` capability beside it.
//!
//! Layers, later wins: built-in defaults < `config.toml` < environment variables named
//! `MICRO_API__SECTION__KEY` (double underscore between levels, so test variables such as
//! `MICRO_API_TEST_MYSQL_URL` never collide). After parsing, [`Config::validate`] checks the
//! whole file and reports every problem at once, each with how to fix it.

pub mod etcd;
pub mod host;
pub mod layers;
pub mod live;
pub mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub plugins: PluginsConfig,
    pub registry: RegistryConfig,
    pub cluster: ClusterConfig,
    pub auth: AuthConfig,
    pub telemetry: TelemetryConfig,
    /// `[front]`: timeouts and limits of the public front door.
    pub front: FrontConfig,
    /// `[admin]`: who may use the admin listener.
    pub admin: AdminConfig,
    /// `[login_limit]`: failed logins allowed per user name and per client address.
    pub login_limit: LoginLimitConfig,
    /// `[breaker.default]` and `[breaker."<service>.<method>"]`.
    pub breaker: BTreeMap<String, BreakerOverrides>,
    /// `[[route]]`: which HTTP plugin serves which path.
    pub route: Vec<RouteConfig>,
    /// `[plugin.<name>]`: what each plugin is granted, and its limits.
    pub plugin: BTreeMap<String, PluginConfig>,
    /// `[broker]`: where published messages go (in-process, or NATS).
    pub broker: BrokerConfig,
    /// `[config_store]`: the etcd layer of the config, and watching for changes.
    pub config_store: ConfigStoreConfig,
    /// Folder for the SQLite database, the dev signing key and the compile cache.
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub body_limit: usize,
    /// This node's name in the registry.
    pub node_id: String,
    /// The internal rpc listener other nodes call (HTTP/2); none on a single node.
    pub rpc: Option<SocketAddr>,
    /// On SIGTERM: how long to keep serving after deregistering, while other nodes notice.
    pub shutdown_grace_ms: u64,
    /// Then: how long requests in flight may take to finish.
    pub drain_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BrokerBackend {
    /// Messages stay in this process.
    Memory,
    /// Core NATS: messages cross hosts, at most once.
    Nats,
}

/// `[broker]`: the publish/subscribe capability's backend and queues.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    pub backend: BrokerBackend,
    /// The NATS server, such as `nats://127.0.0.1:4222`.
    pub url: String,
    /// Subjects are `<prefix>.<topic>`, queue groups `<prefix>.<plugin>`.
    pub prefix: String,
    /// Messages waiting to be sent, and deliveries waiting for a subscriber; past it a
    /// message is dropped and counted (publishing never waits).
    pub queue_capacity: usize,
    /// Subscriber invocations running at once.
    pub max_in_flight: usize,
    /// Largest payload `publish` accepts, in bytes; larger: `invalid` (a queue of
    /// `queue_capacity` messages holds at most that many times this).
    pub max_message_bytes: usize,
    /// `[broker.topic."<topic>"]`: a topic's own `max_message_bytes`.
    pub topic: BTreeMap<String, TopicLimits>,
}

/// The limits of one topic.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopicLimits {
    pub max_message_bytes: usize,
}

impl BrokerConfig {
    /// The largest payload accepted on `topic`.
    pub fn max_message_bytes_of(&self, topic: &str) -> usize {
        self.topic
            .get(topic)
            .map_or(self.max_message_bytes, |t| t.max_message_bytes)
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            backend: BrokerBackend::Memory,
            url: "nats://127.0.0.1:4222".into(),
            prefix: "micro-api".into(),
            queue_capacity: 1024,
            max_in_flight: 16,
            max_message_bytes: 64 * 1024,
            topic: BTreeMap::new(),
        }
    }
}

/// `[config_store]`: where the last layer of the config lives, and what is watched.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigStoreConfig {
    /// etcd endpoints holding the last layer; empty: no etcd layer.
    pub endpoints: Vec<String>,
    /// Keys `<prefix>/<section>/<key>` (e.g. `<prefix>/breaker/default/timeout_ms`).
    pub prefix: String,
    /// Apply changes of the config file without a restart.
    pub watch_file: bool,
}

impl Default for ConfigStoreConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            prefix: "/micro-api/config".into(),
            watch_file: true,
        }
    }
}

/// A topic: dot-separated words of letters, digits, `-` and `_` (a NATS subject without
/// wildcards).
pub fn valid_topic(topic: &str) -> bool {
    topic.split('.').all(|word| {
        !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// How the nodes of a cluster call each other.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The secret every node presents on the rpc listener (better from
    /// `MICRO_API__CLUSTER__SECRET`); required with more than one node.
    pub secret: Option<String>,
    /// Connections kept per remote node.
    pub pool_size: usize,
    /// How long a node whose connections fail is left out before it is tried again.
    pub eject_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            secret: None,
            pool_size: 10,
            eject_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://...`, `mysql://...` or `postgres://...`; empty: SQLite in `data_dir`.
    pub url: String,
    pub max_connections: u32,
}

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

/// The pooling allocator's size: every concurrent instance (requests in flight, nested rpc
/// callees, old and new versions during a reload) takes a slot.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RegistryBackend {
    Memory,
    Etcd,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    pub backend: RegistryBackend,
    /// etcd endpoints, such as `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Key prefix of this cluster in etcd.
    pub prefix: String,
    /// Lease TTL: a node that stops renewing disappears after this long.
    pub ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The token signing key itself (better from `MICRO_API__AUTH__SIGNING_KEY`).
    pub signing_key: Option<String>,
    /// A file holding the key; empty: `<data_dir>/signing.key`, created at first start.
    pub key_file: PathBuf,
    pub issuer: String,
    pub audience: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// A `tracing` filter such as `info` or `micro_api=debug,info`.
    pub log_level: String,
    /// Where spans go over OTLP/HTTP (protobuf), e.g. `http://127.0.0.1:4318` (Jaeger >= 1.35,
    /// any OpenTelemetry collector); `/v1/traces` is added. Empty: no export, no OTel cost.
    pub otlp_endpoint: String,
    /// Share of new traces exported (0.0 to 1.0); a caller's sampled flag is followed.
    pub sampling_ratio: f64,
    /// `service.name` of the exported spans; `service.instance.id` is `[server] node_id`.
    pub service_name: String,
    /// A folder for rotating JSON log files (besides stdout); empty: stdout only.
    pub log_dir: PathBuf,
    /// When a new log file starts: `minutely`, `hourly`, `daily` or `never`.
    pub log_rotation: String,
    /// Log files kept in `log_dir`; older ones are deleted.
    pub log_files_kept: usize,
}

/// Hystrix settings of one command; unset fields come from `[breaker.default]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A path such as `/user/login` or `/hello/{name}`; `/{*rest}` matches the remainder.
    pub path: String,
    /// Allowed methods; empty: any.
    #[serde(default)]
    pub methods: Vec<String>,
    pub plugin: String,
    /// `"required"`: the host verifies a bearer token before the plugin runs.
    #[serde(default)]
    pub auth: RouteAuth,
}

/// What a route asks of its callers.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RouteAuth {
    /// Anyone may call it (the plugin may still check credentials itself).
    #[default]
    None,
    /// A valid access token (`Authorization: Bearer`), else 401; the plugin gets its claims.
    Required,
}

/// `[front]`: how long and how much the public front door waits for and accepts from a
/// client before refusing it (408, 431, 503).
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontConfig {
    /// Time to send a complete request head, counted from when the connection opens or its
    /// previous response ends (HTTP/1.1); past it: 408 and the connection is closed.
    pub header_read_timeout_ms: u64,
    /// Time a connection may sit with no request in progress before it is closed.
    pub idle_timeout_ms: u64,
    /// Time from a request's head to its response: reading the body (408 past it) and
    /// running the plugin (504 past it).
    pub request_timeout_ms: u64,
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes; larger: 431.
    pub max_header_bytes: usize,
    /// Most header fields in one request; more: 431.
    pub max_headers: usize,
}

impl Default for FrontConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            max_connections: 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
        }
    }
}

/// hyper's smallest read buffer, and so the smallest `max_header_bytes`.
pub const MIN_HEADER_BYTES: usize = 8192;

/// A credential from the config: deserialized as a string, never shown by `Debug`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Serialized (for the admin API, `config list`) as a placeholder, never as itself.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// What a secret value is shown as.
pub const REDACTED: &str = "<secret>";

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[admin]`: when `token` is set, every admin endpoint but `/admin/health/live` asks for
/// `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Best set through `MICRO_API__ADMIN__TOKEN`; at least 16 characters.
    pub token: Option<Secret>,
}

/// `[login_limit]`: brute-force protection of the login route, counted by the host from
/// the route's answers (401 is a failure), so it holds across plugin reloads.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginLimitConfig {
    /// The login route's path; empty turns the limit off.
    pub path: String,
    /// The form field holding the user name.
    pub user_field: String,
    /// Failed logins of one user name within the window; more: 429.
    pub max_failures: u32,
    /// Failed logins from one client address (an IPv6 /64) within the window; more: 429.
    pub max_failures_per_address: u32,
    pub window_secs: u64,
    /// User names and addresses tracked at once; past it, the oldest are forgotten.
    pub max_entries: usize,
}

impl Default for LoginLimitConfig {
    fn default() -> Self {
        Self {
            path: "/user/login".into(),
            user_field: "userName".into(),
            max_failures: 5,
            max_failures_per_address: 20,
            window_secs: 300,
            max_entries: 100_000,
        }
    }
}

/// What one plugin may use (deny by default) and how much.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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
    /// loopback, private and other non-public addresses only when a pattern names them.
    pub http: Vec<String>,
    /// Its limits; unset ones come from `[plugins.limits]`.
    pub limits: LimitsOverrides,
    /// Topics it may publish on through the `broker` import.
    pub publish: Vec<String>,
    /// Topics whose messages it is handed (a component of the `subscriber` world).
    pub subscribe: Vec<String>,
    /// Values it can read through the `config` import like `config`, but never logged,
    /// shown by the admin API or `config list`, nor given to another plugin.
    pub secrets: BTreeMap<String, Secret>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Linear memory a single instance may grow to, in MiB.
    pub memory_mb: u64,
    /// Wall-clock budget of one invocation (an HTTP request, or an rpc call's own share).
    pub deadline_ms: u64,
    /// Rows one `sql.query` may return; one more and the query fails `invalid`.
    pub sql_max_rows: usize,
    /// Bytes of values one `sql.query` may return (text and blobs by length, numbers 8).
    pub sql_max_bytes: usize,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsOverrides {
    pub memory_mb: Option<u64>,
    pub deadline_ms: Option<u64>,
    pub sql_max_rows: Option<usize>,
    pub sql_max_bytes: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            admin: ([127, 0, 0, 1], 9090).into(),
            body_limit: 1024 * 1024,
            node_id: "node-1".into(),
            rpc: None,
            shutdown_grace_ms: 500,
            drain_timeout_ms: 10_000,
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
            sql_max_rows: 10_000,
            sql_max_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            backend: RegistryBackend::Memory,
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/micro-api".into(),
            ttl_secs: 10,
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
            otlp_endpoint: String::new(),
            sampling_ratio: 1.0,
            service_name: "micro-api".into(),
            log_dir: PathBuf::new(),
            log_rotation: "daily".into(),
            log_files_kept: 7,
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
            cluster: ClusterConfig::default(),
            auth: AuthConfig::default(),
            telemetry: TelemetryConfig::default(),
            front: FrontConfig::default(),
            admin: AdminConfig::default(),
            login_limit: LoginLimitConfig::default(),
            breaker: BTreeMap::new(),
            route: Vec::new(),
            plugin: BTreeMap::new(),
            broker: BrokerConfig::default(),
            config_store: ConfigStoreConfig::default(),
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
        let env: Vec<(String, String)> = env.into_iter().collect();
        Self::load_layered(path, &env, &BTreeMap::new()).map(|layered| layered.config)
    }

    /// Every layer: the file at `path`, then the environment, then `store` (the etcd
    /// layer: `section/key` paths to values), each value remembered with its layer.
    pub fn load_layered(
        path: Option<&Path>,
        env: &[(String, String)],
        store: &BTreeMap<String, String>,
    ) -> Result<layers::Layered, ConfigError> {
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
        let mut origins = layers::Origins::default();
        origins.record(&doc, layers::Layer::File);
        let mut env_doc = toml::Table::new();
        for (name, value) in env {
            if let Some(key) = name.strip_prefix(ENV_PREFIX) {
                let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
                let name = format!("environment variable {name}");
                // A secret is a string as it is, as in the etcd layer: an all-digit one read
                // as a TOML integer would fail the type check, and the error would quote it.
                let verbatim = layers::is_secret_key(&path.join("/"));
                apply_override(&mut env_doc, &name, &path, value, verbatim)?;
            }
        }
        let mut store_doc = toml::Table::new();
        for (key, value) in store {
            let path: Vec<String> = key.split('/').map(str::to_string).collect();
            // A secret is a string as it is: never parsed, so no error can quote it.
            let verbatim = layers::is_secret_key(key);
            apply_override(
                &mut store_doc,
                &format!("etcd key {key}"),
                &path,
                value,
                verbatim,
            )?;
        }
        for (layer, overrides) in [
            (layers::Layer::Env, env_doc),
            (layers::Layer::Etcd, store_doc),
        ] {
            origins.record(&overrides, layer);
            layers::merge(&mut doc, overrides);
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
            Ok(layers::Layered { config, origins })
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
        if !self.telemetry.log_dir.as_os_str().is_empty() {
            resolve(&mut self.telemetry.log_dir);
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
        if self.registry.backend == RegistryBackend::Etcd {
            if self.registry.endpoints.is_empty() {
                problems.push("[registry] endpoints: list at least one etcd endpoint".into());
            }
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
            if limits.sql_max_rows == 0 || limits.sql_max_bytes == 0 {
                problems.push(format!(
                    "[plugin.{name}] limits.sql_max_rows and limits.sql_max_bytes must be at least 1"
                ));
            }
            for topic in p.publish.iter().chain(&p.subscribe) {
                if !valid_topic(topic) {
                    problems.push(format!(
                        "[plugin.{name}] {topic:?} is not a topic: dot-separated words of letters, digits, - and _"
                    ));
                }
            }
            for pattern in &p.http {
                if let Err(e) = crate::outbound::Pattern::parse(pattern) {
                    problems.push(format!("[plugin.{name}] http: {pattern:?}: {e}"));
                }
            }
        }
        problems.extend(self.security_problems());
        let b = &self.broker;
        if b.queue_capacity == 0 || b.max_in_flight == 0 {
            problems.push("[broker] queue_capacity and max_in_flight must be at least 1".into());
        }
        if b.max_message_bytes == 0 {
            problems.push("[broker] max_message_bytes must be at least 1".into());
        }
        for (topic, limits) in &b.topic {
            if !valid_topic(topic) {
                problems.push(format!(
                    "[broker.topic.{topic:?}] is not a topic: dot-separated words of letters, digits, - and _"
                ));
            }
            if limits.max_message_bytes == 0 {
                problems.push(format!(
                    "[broker.topic.{topic:?}] max_message_bytes must be at least 1"
                ));
            }
        }
        if b.backend == BrokerBackend::Nats && !valid_topic(&b.prefix) {
            problems.push(format!(
                "[broker] prefix {:?} must be dot-separated words (a NATS subject prefix)",
                b.prefix
            ));
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

    /// The problems of `[front]`, `[admin]` and `[login_limit]`.
    fn security_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let f = &self.front;
        for (key, value) in [
            ("header_read_timeout_ms", f.header_read_timeout_ms),
            ("idle_timeout_ms", f.idle_timeout_ms),
            ("request_timeout_ms", f.request_timeout_ms),
            ("max_connections", f.max_connections as u64),
            ("max_headers", f.max_headers as u64),
        ] {
            if value == 0 {
                problems.push(format!("[front] {key} must be at least 1"));
            }
        }
        if f.max_header_bytes < MIN_HEADER_BYTES {
            problems.push(format!(
                "[front] max_header_bytes must be at least {MIN_HEADER_BYTES}"
            ));
        }
        if u32::try_from(f.max_connections).is_err() {
            problems.push(format!(
                "[front] max_connections must be at most {}",
                u32::MAX
            ));
        }
        if self
            .admin
            .token
            .as_ref()
            .is_some_and(|t| t.expose().trim().len() < 16)
        {
            problems.push(
                "[admin] token must be at least 16 characters (or unset: no admin auth)".into(),
            );
        }
        problems.extend(self.telemetry.problems());
        let l = &self.login_limit;
        if !l.path.is_empty() {
            if !l.path.starts_with('/') {
                problems.push("[login_limit] path starts with / (or is empty: off)".into());
            }
            if l.user_field.is_empty() {
                problems.push("[login_limit] user_field must name the form field".into());
            }
            if l.max_failures == 0 || l.max_failures_per_address == 0 {
                problems.push(
                    "[login_limit] max_failures and max_failures_per_address must be at least 1"
                        .into(),
                );
            }
            if l.window_secs == 0 {
                problems.push("[login_limit] window_secs must be at least 1".into());
            }
            if l.max_entries == 0 {
                problems.push("[login_limit] max_entries must be at least 1".into());
            }
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
            sql_max_rows: p.limits.sql_max_rows.unwrap_or(d.sql_max_rows),
            sql_max_bytes: p.limits.sql_max_bytes.unwrap_or(d.sql_max_bytes),
        }
    }
}

/// The scheme of a URL, never its credentials (config errors are logged).
fn scheme_of(url: &str) -> &str {
    url.split_once(':').map_or("", |(scheme, _)| scheme)
}

/// Sets the value at `path` (`["section", "key"]`) in the document, from the variable or
/// etcd key `name`. The value is read as a TOML value when it is one (numbers, booleans,
/// arrays, inline tables) and as a string otherwise, or always as a string when `verbatim`.
fn apply_override(
    doc: &mut toml::Table,
    name: &str,
    path: &[String],
    value: &str,
    verbatim: bool,
) -> Result<(), ConfigError> {
    if path.iter().any(String::is_empty) {
        return Err(ConfigError::Env {
            name: name.into(),
            message: "empty section or key; use MICRO_API__SECTION__KEY or section/key".into(),
        });
    }
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .filter(|_| !verbatim)
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
