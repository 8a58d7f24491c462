//! Parameterised SQL as a capability, through sqlx on SQLite (the default, no server),
//! MySQL/MariaDB or PostgreSQL, chosen by `[database] url`.
//!
//! Plugins write SQL once, with `?` placeholders and backtick-quoted identifiers; the
//! PostgreSQL backend rewrites both ([`rewrite`]). Each backend is a [`Database`]; the pools
//! and the migrations (one folder per database under `host/migrations/`) live in the host.
//! Values and rows are the WIT types themselves: no second definition to keep in step.

mod authorizer;
mod backend;
mod config;
mod host;
pub mod rewrite;

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use wasmtime::component::{HasSelf, Linker};

pub use crate::bindings::micro_api::host::sql::{Rows, Value};
pub use backend::connect;
pub use config::{DatabaseConfig, default_pool_size};

use crate::capability::{Capability, InitError, Invocation, PluginSpec, Shared, StateOf};
use crate::telemetry::metrics::{Histograms, histograms};

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The statement or its parameters were refused by the database.
    #[error("{0}")]
    Statement(String),
    /// The database could not be reached or failed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("no transaction is open")]
    NoTransaction,
    #[error("a transaction is already open")]
    TransactionOpen,
    /// The result passed a cap of [`ResultCaps`] while it streamed in.
    #[error(
        "the result has more than {limit} {what}: select less (LIMIT, fewer columns) or raise sql_max_{what} of the plugin"
    )]
    TooLarge { what: &'static str, limit: usize },
}

/// The most one query may hand a plugin (`[database] max_rows`, `max_bytes`, or the
/// plugin's own `sql_max_rows`, `sql_max_bytes`): checked row by row as the result streams
/// in, so a huge result never sits in the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ResultCaps {
    pub max_rows: usize,
    /// Bytes of values: text and blobs by length, numbers 8.
    pub max_bytes: usize,
}

impl Default for ResultCaps {
    fn default() -> Self {
        DatabaseConfig::default().caps()
    }
}

impl From<sqlx::Error> for SqlError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(e) => SqlError::Statement(e.message().to_string()),
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::Encode(_)
            | sqlx::Error::TypeNotFound { .. }
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::ColumnNotFound(_) => SqlError::Statement(e.to_string()),
            other => SqlError::Unavailable(other.to_string()),
        }
    }
}

/// A database backend: a connection pool.
#[async_trait::async_trait]
pub trait Database: Send + Sync {
    /// The OpenTelemetry `db.system.name`: `sqlite`, `mysql` or `postgresql`.
    fn system(&self) -> &'static str;
    /// A query within the default [`ResultCaps`].
    async fn query(&self, statement: &str, params: &[Value]) -> Result<Rows, SqlError> {
        self.query_within(statement, params, ResultCaps::default())
            .await
    }
    async fn query_within(
        &self,
        statement: &str,
        params: &[Value],
        caps: ResultCaps,
    ) -> Result<Rows, SqlError>;
    async fn execute(&self, statement: &str, params: &[Value]) -> Result<u64, SqlError>;
    async fn begin(&self) -> Result<Box<dyn Transaction>, SqlError>;
    /// Whether the database answers (readiness).
    async fn ping(&self) -> Result<(), SqlError>;
}

/// An open transaction; dropping it rolls back.
#[async_trait::async_trait]
pub trait Transaction: Send {
    async fn query_within(
        &mut self,
        statement: &str,
        params: &[Value],
        caps: ResultCaps,
    ) -> Result<Rows, SqlError>;
    async fn execute(&mut self, statement: &str, params: &[Value]) -> Result<u64, SqlError>;
    async fn commit(self: Box<Self>) -> Result<(), SqlError>;
    async fn rollback(self: Box<Self>) -> Result<(), SqlError>;
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SqlLabel {
    /// `query` or `execute`.
    operation: &'static str,
}

/// The capability: the database `[database]` names, and the statements' timings.
pub struct Sql {
    database: Arc<dyn Database>,
    durations: Histograms<SqlLabel>,
}

impl Sql {
    /// The database, for the host's readiness check.
    pub fn database(&self) -> Arc<dyn Database> {
        self.database.clone()
    }
}

/// Whether one plugin may use the database, and how much one query may return to it.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SqlGrant {
    sql: bool,
    #[serde(skip)]
    caps: ResultCaps,
}

/// The grant as `[plugin.<name>]` writes it.
#[derive(Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Written {
    sql: bool,
    /// Rows one `sql.query` may return; unset: `[database] max_rows`.
    sql_max_rows: Option<usize>,
    /// Bytes of values one `sql.query` may return; unset: `[database] max_bytes`.
    sql_max_bytes: Option<usize>,
}

/// Per-instance state of the `sql` import: the database when granted, and the request's
/// open transaction, which rolls back with the store if the plugin never commits (or traps).
pub struct SqlState {
    database: Option<Arc<dyn Database>>,
    plugin: Arc<str>,
    caps: ResultCaps,
    transaction: Option<Box<dyn Transaction>>,
    durations: Histograms<SqlLabel>,
}

impl Capability for Sql {
    const NAME: &'static str = "sql";
    const GRANT_KEYS: &'static [&'static str] = &["sql", "sql_max_rows", "sql_max_bytes"];
    type Config = DatabaseConfig;
    type Grant = SqlGrant;
    type State = SqlState;

    fn problems(config: &DatabaseConfig) -> Vec<String> {
        config.problems()
    }

    async fn init(config: &DatabaseConfig, shared: &mut Shared<'_>) -> Result<Self, InitError> {
        let database: Arc<dyn Database> = connect(&config.url, config.pool_size())
            .await
            .map_err(|e| InitError::new("database", e))?
            .into();
        let durations = histograms();
        shared.metrics.register(
            "sql_duration_seconds",
            "Time of the sql import's statements",
            durations.clone(),
        );
        Ok(Self {
            database,
            durations,
        })
    }

    fn link<T: StateOf<SqlState>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        use crate::bindings::micro_api::host::sql;
        sql::add_to_linker::<T, HasSelf<SqlState>>(linker, T::state)
    }

    fn configure(
        config: &DatabaseConfig,
        plugin: &PluginSpec<'_>,
    ) -> Result<SqlGrant, Vec<String>> {
        let written: Written = plugin.grant(Self::GRANT_KEYS)?;
        let fix = "add `sql = true` to grant the database";
        plugin.require("micro-api:host/sql", written.sql, fix)?;
        let defaults = config.caps();
        let caps = ResultCaps {
            max_rows: written.sql_max_rows.unwrap_or(defaults.max_rows),
            max_bytes: written.sql_max_bytes.unwrap_or(defaults.max_bytes),
        };
        if caps.max_rows == 0 || caps.max_bytes == 0 {
            return Err(vec![format!(
                "[plugin.{}] sql_max_rows and sql_max_bytes must be at least 1",
                plugin.name
            )]);
        }
        Ok(SqlGrant {
            sql: written.sql,
            caps,
        })
    }

    fn prepare(&self, grant: &SqlGrant, invocation: &Invocation<'_>) -> SqlState {
        SqlState {
            database: grant.sql.then(|| self.database.clone()),
            plugin: invocation.plugin.clone(),
            caps: grant.caps,
            transaction: None,
            durations: self.durations.clone(),
        }
    }
}
