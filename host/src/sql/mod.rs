//! Parameterised SQL through sqlx on SQLite (the default, no server), MySQL/MariaDB or
//! PostgreSQL, chosen by `[database] url`.
//!
//! Plugins write SQL once, with `?` placeholders and backtick-quoted identifiers; the
//! PostgreSQL backend rewrites both ([`rewrite`]). Each backend is a [`Database`]; the pools
//! and the migrations (one folder per database under `host/migrations/`) live in the host.

mod authorizer;
mod backend;
mod host;
pub mod rewrite;

use std::sync::Arc;

use crate::app::App;
use crate::config::LimitsConfig;
use crate::plugins::Plugin;

pub use backend::connect;

/// A parameter or a column value, as the WIT `sql.value`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

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
        "the result has more than {limit} {what}: select less (LIMIT, fewer columns) or raise limits.sql_max_{what} of the plugin"
    )]
    TooLarge { what: &'static str, limit: usize },
}

/// The most one query may hand a plugin (`sql_max_rows`, `sql_max_bytes` of its limits):
/// checked row by row as the result streams in, so a huge result never sits in the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultCaps {
    pub max_rows: usize,
    /// Bytes of values: text and blobs by length, numbers 8.
    pub max_bytes: usize,
}

impl From<&LimitsConfig> for ResultCaps {
    fn from(limits: &LimitsConfig) -> Self {
        Self {
            max_rows: limits.sql_max_rows,
            max_bytes: limits.sql_max_bytes,
        }
    }
}

impl Default for ResultCaps {
    fn default() -> Self {
        (&LimitsConfig::default()).into()
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

/// Per-instance state of the `sql` import: the database when granted, and the request's
/// open transaction, which rolls back with the store if the plugin never commits (or traps).
pub struct SqlState {
    database: Option<Arc<dyn Database>>,
    plugin: String,
    caps: ResultCaps,
    transaction: Option<Box<dyn Transaction>>,
}

impl SqlState {
    pub fn prepare(app: &App, plugin: &Plugin) -> Self {
        Self {
            database: plugin.grants.sql.then(|| app.database.clone()),
            plugin: plugin.name.clone(),
            caps: (&plugin.limits).into(),
            transaction: None,
        }
    }
}
