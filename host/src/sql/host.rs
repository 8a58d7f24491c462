//! The WIT glue of the `sql` import: grant first, then the open transaction or the pool.

use tracing::Instrument;

use super::{Rows, SqlError, SqlLabel, SqlState, Value};
use crate::bindings::Error;
use crate::bindings::micro_api::host::sql::Host;
use crate::capability::forbidden;

impl SqlState {
    fn database(&self) -> Result<&std::sync::Arc<dyn super::Database>, Error> {
        self.database.as_ref().ok_or_else(|| {
            let fix = format!("add `sql = true` to [plugin.{}]", self.plugin);
            forbidden(&self.plugin, "sql", &fix)
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

/// A statement's operation (its first word) and the table it names first (after `FROM`,
/// `INTO` or `UPDATE`), for the span: the statement's text itself may hold literals.
fn summary(statement: &str) -> (&str, &str) {
    let mut words = statement.split_ascii_whitespace();
    let operation = words.next().unwrap_or_default();
    let mut previous = operation;
    for word in words {
        if ["from", "into", "update"]
            .iter()
            .any(|k| previous.eq_ignore_ascii_case(k))
        {
            let table = word.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            return (operation, table);
        }
        previous = word;
    }
    (operation, "")
}

/// The span of one statement (kept open by the caller around the database call).
fn statement_span(state: &SqlState, statement: &str) -> tracing::Span {
    let (operation, table) = summary(statement);
    let span = tracing::info_span!(
        "sql.statement",
        otel.kind = "client",
        otel.name = tracing::field::Empty,
        db.system.name = state.database.as_ref().map_or("", |d| d.system()),
        db.operation.name = operation,
        db.collection.name = table,
        plugin = %state.plugin,
    );
    if crate::telemetry::exporting() {
        span.record("otel.name", format!("{operation} {table}").trim_end());
    }
    span
}

/// Runs one statement in its span and counts its time.
async fn timed<T>(
    durations: &crate::telemetry::metrics::Histograms<SqlLabel>,
    span: tracing::Span,
    operation: &'static str,
    statement: impl Future<Output = Result<T, SqlError>>,
) -> Result<T, SqlError> {
    let started = std::time::Instant::now();
    let result = statement.instrument(span).await;
    durations
        .get_or_create(&SqlLabel { operation })
        .observe(started.elapsed().as_secs_f64());
    result
}

impl Host for &mut SqlState {
    async fn query(&mut self, statement: String, params: Vec<Value>) -> Result<Rows, Error> {
        let database = self.database()?.clone();
        let span = statement_span(self, &statement);
        let durations = self.durations.clone();
        let caps = self.caps;
        let rows = timed(&durations, span, "query", async {
            match self.transaction.as_mut() {
                Some(tx) => tx.query_within(&statement, &params, caps).await,
                None => database.query_within(&statement, &params, caps).await,
            }
        })
        .await?;
        Ok(rows)
    }

    async fn execute(&mut self, statement: String, params: Vec<Value>) -> Result<u64, Error> {
        let database = self.database()?.clone();
        let span = statement_span(self, &statement);
        let durations = self.durations.clone();
        Ok(timed(&durations, span, "execute", async {
            match self.transaction.as_mut() {
                Some(tx) => tx.execute(&statement, &params).await,
                None => database.execute(&statement, &params).await,
            }
        })
        .await?)
    }

    #[tracing::instrument(name = "sql.begin", skip_all, fields(otel.kind = "client"))]
    async fn begin(&mut self) -> Result<(), Error> {
        let database = self.database()?.clone();
        if self.transaction.is_some() {
            return Err(SqlError::TransactionOpen.into());
        }
        self.transaction = Some(database.begin().await?);
        Ok(())
    }

    #[tracing::instrument(name = "sql.commit", skip_all, fields(otel.kind = "client"))]
    async fn commit(&mut self) -> Result<(), Error> {
        self.database()?;
        let tx = self.transaction.take().ok_or(SqlError::NoTransaction)?;
        Ok(tx.commit().await?)
    }

    #[tracing::instrument(name = "sql.rollback", skip_all, fields(otel.kind = "client"))]
    async fn rollback(&mut self) -> Result<(), Error> {
        self.database()?;
        let tx = self.transaction.take().ok_or(SqlError::NoTransaction)?;
        Ok(tx.rollback().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn summaries_name_operation_and_table_never_values() {
        assert_eq!(
            summary("SELECT `user_id`, `pwd` FROM `user` WHERE `user_name` = ?"),
            ("SELECT", "user")
        );
        assert_eq!(
            summary("insert into probe_kv (k, v) values ('secret', ?)"),
            ("insert", "probe_kv")
        );
        assert_eq!(summary("UPDATE \"user\" SET pwd = ?"), ("UPDATE", "user"));
        assert_eq!(summary("  "), ("", ""));
    }
}
