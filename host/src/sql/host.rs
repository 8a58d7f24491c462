//! The `sql` import: grant first, then the open transaction or the pool.

use super::{Rows, SqlError, SqlState, Value};
use crate::bindings::Error;
use crate::bindings::micro_api::host::sql::{self as wit, Host};

impl SqlState {
    fn database(&self) -> Result<&std::sync::Arc<dyn super::Database>, Error> {
        self.database.as_ref().ok_or_else(|| {
            Error::Forbidden(format!(
                "{} is not granted sql; add `sql = true` to [plugin.{}]",
                self.plugin, self.plugin
            ))
        })
    }
}

impl From<SqlError> for Error {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Unavailable(m) => Error::Unavailable(m),
            other => Error::Invalid(other.to_string()),
        }
    }
}

impl From<wit::Value> for Value {
    fn from(v: wit::Value) -> Self {
        match v {
            wit::Value::Null => Value::Null,
            wit::Value::Integer(i) => Value::Integer(i),
            wit::Value::Real(f) => Value::Real(f),
            wit::Value::Text(s) => Value::Text(s),
            wit::Value::Blob(b) => Value::Blob(b),
        }
    }
}

impl From<Value> for wit::Value {
    fn from(v: Value) -> Self {
        match v {
            Value::Null => wit::Value::Null,
            Value::Integer(i) => wit::Value::Integer(i),
            Value::Real(f) => wit::Value::Real(f),
            Value::Text(s) => wit::Value::Text(s),
            Value::Blob(b) => wit::Value::Blob(b),
        }
    }
}

impl From<Rows> for wit::Rows {
    fn from(r: Rows) -> Self {
        wit::Rows {
            columns: r.columns,
            rows: r
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(Into::into).collect())
                .collect(),
        }
    }
}

fn params(values: Vec<wit::Value>) -> Vec<Value> {
    values.into_iter().map(Into::into).collect()
}

impl Host for &mut SqlState {
    #[tracing::instrument(name = "sql.query", skip_all, fields(otel.kind = "client", plugin = %self.plugin))]
    async fn query(
        &mut self,
        statement: String,
        values: Vec<wit::Value>,
    ) -> Result<wit::Rows, Error> {
        let database = self.database()?.clone();
        let params = params(values);
        let rows = match self.transaction.as_mut() {
            Some(tx) => tx.query(&statement, &params).await,
            None => database.query(&statement, &params).await,
        }?;
        Ok(rows.into())
    }

    #[tracing::instrument(name = "sql.execute", skip_all, fields(otel.kind = "client", plugin = %self.plugin))]
    async fn execute(&mut self, statement: String, values: Vec<wit::Value>) -> Result<u64, Error> {
        let database = self.database()?.clone();
        let params = params(values);
        Ok(match self.transaction.as_mut() {
            Some(tx) => tx.execute(&statement, &params).await,
            None => database.execute(&statement, &params).await,
        }?)
    }

    async fn begin(&mut self) -> Result<(), Error> {
        let database = self.database()?.clone();
        if self.transaction.is_some() {
            return Err(SqlError::TransactionOpen.into());
        }
        self.transaction = Some(database.begin().await?);
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), Error> {
        self.database()?;
        let tx = self.transaction.take().ok_or(SqlError::NoTransaction)?;
        Ok(tx.commit().await?)
    }

    async fn rollback(&mut self) -> Result<(), Error> {
        self.database()?;
        let tx = self.transaction.take().ok_or(SqlError::NoTransaction)?;
        Ok(tx.rollback().await?)
    }
}
