//! The three sqlx backends behind [`Database`]: one generic implementation, and per
//! database a [`Dialect`] that knows its migrations, its SQL rewriting and how its column
//! types map onto [`Value`].

use std::str::FromStr;

use sqlx::{
    Arguments, AssertSqlSafe, Column, ConnectOptions, Executor, IntoArguments, Pool, Row, TypeInfo,
    ValueRef,
};

use futures::TryStreamExt;

use super::{Database, ResultCaps, Rows, SqlError, Transaction, Value, rewrite};

/// Connects to `url`, creating a SQLite file if needed, and runs the migrations.
pub async fn connect(url: &str, max_connections: u32) -> Result<Box<dyn Database>, SqlError> {
    if url.starts_with("sqlite:") {
        Sqlx::<sqlx::Sqlite>::connect(url, max_connections).await
    } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
        Sqlx::<sqlx::MySql>::connect(&url.replacen("mariadb:", "mysql:", 1), max_connections).await
    } else {
        Sqlx::<sqlx::Postgres>::connect(url, max_connections).await
    }
}

/// What differs between the databases.
pub trait Dialect: sqlx::Database + Sync
where
    usize: sqlx::ColumnIndex<Self::Row>,
{
    const SYSTEM: &'static str;
    fn migrator() -> sqlx::migrate::Migrator;
    fn rewrite(statement: &str) -> String {
        statement.to_string()
    }
    fn options(url: &str) -> Result<<Self::Connection as sqlx::Connection>::Options, SqlError> {
        <Self::Connection as sqlx::Connection>::Options::from_str(url)
            .map_err(|e| SqlError::Unavailable(format!("bad database url: {e}")))
    }
    /// The pool's own options (SQLite: the authorizer on every connection, no test on acquire).
    fn pool_options(options: sqlx::pool::PoolOptions<Self>) -> sqlx::pool::PoolOptions<Self> {
        options
    }
    fn decode(row: &Self::Row, index: usize) -> Result<Value, sqlx::Error>;
    /// `QueryResult` has no shared trait in sqlx.
    fn rows_affected(result: &Self::QueryResult) -> u64;
    fn bind(args: &mut Self::Arguments, value: &Value) -> Result<(), sqlx::error::BoxDynError>;
}

pub struct Sqlx<DB: sqlx::Database> {
    pool: Pool<DB>,
}

impl<DB> Sqlx<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    DB::Connection: sqlx::migrate::Migrate,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    async fn connect(url: &str, max_connections: u32) -> Result<Box<dyn Database>, SqlError> {
        let options = DB::options(url)?.disable_statement_logging();
        let pool = DB::pool_options(sqlx::pool::PoolOptions::<DB>::new())
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| SqlError::Unavailable(e.to_string()))?;
        DB::migrator()
            .run(&pool)
            .await
            .map_err(|e| SqlError::Unavailable(format!("migrations failed: {e}")))?;
        Ok(Box::new(Self { pool }))
    }
}

fn arguments<DB: Dialect>(params: &[Value]) -> Result<DB::Arguments, SqlError>
where
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let mut args = DB::Arguments::default();
    for (i, value) in params.iter().enumerate() {
        DB::bind(&mut args, value)
            .map_err(|e| SqlError::Statement(format!("parameter {}: {e}", i + 1)))?;
    }
    Ok(args)
}

/// One row's values.
fn row_values<DB: Dialect>(row: &DB::Row) -> Result<Vec<Value>, SqlError>
where
    usize: sqlx::ColumnIndex<DB::Row>,
{
    Ok((0..row.len())
        .map(|i| decode_nullable::<DB>(row, i))
        .collect::<Result<Vec<_>, _>>()?)
}

/// What a value counts against `max_bytes`.
fn value_bytes(value: &Value) -> usize {
    match value {
        Value::Null => 0,
        Value::Integer(_) | Value::Real(_) => 8,
        Value::Text(text) => text.len(),
        Value::Blob(blob) => blob.len(),
    }
}

fn decode_nullable<DB: Dialect>(row: &DB::Row, index: usize) -> Result<Value, sqlx::Error>
where
    usize: sqlx::ColumnIndex<DB::Row>,
{
    if row.try_get_raw(index)?.is_null() {
        return Ok(Value::Null);
    }
    DB::decode(row, index)
}

/// Streams the result in, row by row, and stops at the first row past `caps` (dropping the
/// stream ends the statement).
async fn query_on<'c, DB, E>(
    executor: E,
    statement: &str,
    params: &[Value],
    caps: ResultCaps,
) -> Result<Rows, SqlError>
where
    DB: Dialect,
    E: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let sql = DB::rewrite(statement);
    let mut stream = sqlx::query_with(AssertSqlSafe(sql), arguments::<DB>(params)?).fetch(executor);
    let mut rows = Rows {
        columns: Vec::new(),
        rows: Vec::new(),
    };
    let mut bytes = 0usize;
    while let Some(row) = stream.try_next().await? {
        if rows.rows.len() == caps.max_rows {
            return Err(SqlError::TooLarge {
                what: "rows",
                limit: caps.max_rows,
            });
        }
        if rows.rows.is_empty() {
            rows.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
        }
        let values = row_values::<DB>(&row)?;
        bytes = bytes.saturating_add(values.iter().map(value_bytes).sum());
        if bytes > caps.max_bytes {
            return Err(SqlError::TooLarge {
                what: "bytes",
                limit: caps.max_bytes,
            });
        }
        rows.rows.push(values);
    }
    Ok(rows)
}

async fn execute_on<'c, DB, E>(
    executor: E,
    statement: &str,
    params: &[Value],
) -> Result<u64, SqlError>
where
    DB: Dialect,
    E: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let sql = DB::rewrite(statement);
    let done = sqlx::query_with(AssertSqlSafe(sql), arguments::<DB>(params)?)
        .execute(executor)
        .await?;
    Ok(DB::rows_affected(&done))
}

#[async_trait::async_trait]
impl<DB> Database for Sqlx<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    fn system(&self) -> &'static str {
        DB::SYSTEM
    }

    async fn query_within(
        &self,
        statement: &str,
        params: &[Value],
        caps: ResultCaps,
    ) -> Result<Rows, SqlError> {
        query_on(&self.pool, statement, params, caps).await
    }

    async fn execute(&self, statement: &str, params: &[Value]) -> Result<u64, SqlError> {
        execute_on(&self.pool, statement, params).await
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>, SqlError> {
        Ok(Box::new(SqlxTransaction(self.pool.begin().await?)))
    }

    async fn ping(&self) -> Result<(), SqlError> {
        self.pool.acquire().await?;
        Ok(())
    }
}

struct SqlxTransaction<DB: sqlx::Database>(sqlx::Transaction<'static, DB>);

#[async_trait::async_trait]
impl<DB> Transaction for SqlxTransaction<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    async fn query_within(
        &mut self,
        statement: &str,
        params: &[Value],
        caps: ResultCaps,
    ) -> Result<Rows, SqlError> {
        query_on(&mut *self.0, statement, params, caps).await
    }

    async fn execute(&mut self, statement: &str, params: &[Value]) -> Result<u64, SqlError> {
        execute_on(&mut *self.0, statement, params).await
    }

    async fn commit(self: Box<Self>) -> Result<(), SqlError> {
        Ok(self.0.commit().await?)
    }

    async fn rollback(self: Box<Self>) -> Result<(), SqlError> {
        Ok(self.0.rollback().await?)
    }
}

/// The items every dialect spells the same way but cannot share as trait defaults: sqlx
/// has no common trait for a query result's row count, `Arguments::add` needs the
/// concrete database for its `Encode` bounds, and `migrate!` wants a literal path.
macro_rules! dialect_basics {
    ($system:literal, $migrations:literal, $result:ty, $arguments:ty) => {
        const SYSTEM: &'static str = $system;

        fn migrator() -> sqlx::migrate::Migrator {
            sqlx::migrate!($migrations)
        }

        fn rows_affected(result: &$result) -> u64 {
            result.rows_affected()
        }

        /// Binds one value with the Rust type each database maps it to.
        fn bind(args: &mut $arguments, value: &Value) -> Result<(), sqlx::error::BoxDynError> {
            match value {
                Value::Null => args.add(None::<String>),
                Value::Integer(v) => args.add(*v),
                Value::Real(v) => args.add(*v),
                Value::Text(v) => args.add(v.clone()),
                Value::Blob(v) => args.add(v.clone()),
            }
        }
    };
}

/// The kinds of time columns, all handed to plugins as text.
enum Time {
    /// An instant (`TIMESTAMP` in MySQL, `TIMESTAMPTZ` in PostgreSQL): RFC 3339, UTC.
    Instant,
    /// A wall-clock date and time without zone: `2026-11-29 10:00:00.000`.
    Local,
    Date,
}

fn decode_time<DB: Dialect>(row: &DB::Row, index: usize, kind: Time) -> Result<Value, sqlx::Error>
where
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'r> chrono::DateTime<chrono::Utc>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> chrono::NaiveDateTime: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> chrono::NaiveDate: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
{
    Ok(Value::Text(match kind {
        Time::Instant => row
            .try_get::<chrono::DateTime<chrono::Utc>, _>(index)?
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        Time::Local => row
            .try_get::<chrono::NaiveDateTime, _>(index)?
            .format("%Y-%m-%d %H:%M:%S%.3f")
            .to_string(),
        Time::Date => row.try_get::<chrono::NaiveDate, _>(index)?.to_string(),
    }))
}

fn unsupported(row_type: &str, index: usize) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: index.to_string(),
        source: format!("column type {row_type} has no sql.value mapping").into(),
    }
}

impl Dialect for sqlx::Sqlite {
    dialect_basics!(
        "sqlite",
        "./migrations/sqlite",
        sqlx::sqlite::SqliteQueryResult,
        sqlx::sqlite::SqliteArguments
    );

    fn options(url: &str) -> Result<sqlx::sqlite::SqliteConnectOptions, SqlError> {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .map_err(|e| SqlError::Unavailable(format!("bad database url: {e}")))?;
        if let Some(parent) = options.get_filename().parent() {
            std::fs::create_dir_all(parent).map_err(|e| SqlError::Unavailable(e.to_string()))?;
        }
        // WAL lets readers proceed while a writer commits; the busy timeout makes
        // concurrent writers wait instead of failing with SQLITE_BUSY.
        Ok(options
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(5)))
    }

    fn pool_options(options: sqlx::pool::PoolOptions<Self>) -> sqlx::pool::PoolOptions<Self> {
        // An embedded database's connection cannot go stale the way a network one can, and
        // sqlx pings it again on release: testing it on acquire too costs every statement
        // one more round trip to its worker thread, a sleeping thread woken (3 wake-ups per
        // statement instead of 2; bench/RESULTS.md, token check).
        options
            .test_before_acquire(false)
            .after_connect(|connection, _| Box::pin(super::authorizer::install(connection)))
    }

    fn decode(row: &sqlx::sqlite::SqliteRow, index: usize) -> Result<Value, sqlx::Error> {
        // SQLite is dynamically typed: go by the storage class of this very value.
        let raw = row.try_get_raw(index)?;
        let storage = raw.type_info().name().to_string();
        Ok(match storage.as_str() {
            "INTEGER" | "BOOLEAN" => Value::Integer(row.try_get_unchecked(index)?),
            "REAL" => Value::Real(row.try_get_unchecked(index)?),
            "BLOB" => Value::Blob(row.try_get_unchecked(index)?),
            _ => Value::Text(row.try_get_unchecked(index)?),
        })
    }
}

impl Dialect for sqlx::MySql {
    dialect_basics!(
        "mysql",
        "./migrations/mysql",
        sqlx::mysql::MySqlQueryResult,
        sqlx::mysql::MySqlArguments
    );

    fn decode(row: &sqlx::mysql::MySqlRow, index: usize) -> Result<Value, sqlx::Error> {
        let column = row.column(index).type_info().name().to_string();
        Ok(match column.as_str() {
            "BOOLEAN" | "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => {
                Value::Integer(row.try_get(index)?)
            }
            "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED" => {
                Value::Integer(row.try_get::<u32, _>(index)?.into())
            }
            "BIGINT UNSIGNED" => {
                let v: u64 = row.try_get(index)?;
                Value::Integer(i64::try_from(v).map_err(|e| sqlx::Error::Decode(e.into()))?)
            }
            "FLOAT" | "DOUBLE" => Value::Real(row.try_get(index)?),
            "CHAR" | "VARCHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM"
            | "SET" | "JSON" | "DECIMAL" | "TIME" | "YEAR" => {
                Value::Text(row.try_get_unchecked(index)?)
            }
            // A `*_bin` collation makes text look binary by name; the collation tells.
            "BINARY" | "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
                if <String as sqlx::Type<sqlx::MySql>>::compatible(row.column(index).type_info()) {
                    Value::Text(row.try_get(index)?)
                } else {
                    Value::Blob(row.try_get(index)?)
                }
            }
            "TIMESTAMP" => decode_time::<Self>(row, index, Time::Instant)?,
            "DATETIME" => decode_time::<Self>(row, index, Time::Local)?,
            "DATE" => decode_time::<Self>(row, index, Time::Date)?,
            other => return Err(unsupported(other, index)),
        })
    }
}

impl Dialect for sqlx::Postgres {
    dialect_basics!(
        "postgresql",
        "./migrations/postgres",
        sqlx::postgres::PgQueryResult,
        sqlx::postgres::PgArguments
    );

    fn rewrite(statement: &str) -> String {
        rewrite::for_postgres(statement)
    }

    fn decode(row: &sqlx::postgres::PgRow, index: usize) -> Result<Value, sqlx::Error> {
        let column = row.column(index).type_info().name().to_string();
        Ok(match column.as_str() {
            "BOOL" => Value::Integer(row.try_get::<bool, _>(index)?.into()),
            "INT2" => Value::Integer(row.try_get::<i16, _>(index)?.into()),
            "INT4" => Value::Integer(row.try_get::<i32, _>(index)?.into()),
            "INT8" => Value::Integer(row.try_get(index)?),
            "FLOAT4" => Value::Real(row.try_get::<f32, _>(index)?.into()),
            "FLOAT8" => Value::Real(row.try_get(index)?),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => Value::Text(row.try_get(index)?),
            "BYTEA" => Value::Blob(row.try_get(index)?),
            "TIMESTAMPTZ" => decode_time::<Self>(row, index, Time::Instant)?,
            "TIMESTAMP" => decode_time::<Self>(row, index, Time::Local)?,
            "DATE" => decode_time::<Self>(row, index, Time::Date)?,
            other => return Err(unsupported(other, index)),
        })
    }
}
