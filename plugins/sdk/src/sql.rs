//! SQL on the host's database, with [`Value`] conversions and typed row access.
//!
//! Write statements with `?` placeholders and backtick-quoted identifiers: the host rewrites
//! both for the database it runs on.
//!
//! ```no_run
//! # fn f() -> Result<(), micro_api_sdk::Error> {
//! use micro_api_sdk::sql;
//!
//! let rows = sql::query("SELECT `user_id` FROM `user` WHERE `user_name` = ?", &["micro".into()])?;
//! let ids: Vec<i64> = rows.iter().map(|row| row.get("user_id")).collect::<Result<_, _>>()?;
//! # Ok(()) }
//! ```

pub use crate::host::sql::*;

use crate::error;

impl Rows {
    /// The rows, each readable by column name.
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }

    /// The first row, if any.
    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }

    /// How many rows there are.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// One row of [`Rows`].
#[derive(Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl Row<'_> {
    /// The raw value of `column`, if the row has it.
    pub fn value(&self, column: &str) -> Option<&Value> {
        let index = self.columns.iter().position(|c| c == column)?;
        self.values.get(index)
    }

    /// The value of `column` as a `T`; a missing column or a value of another type
    /// (`NULL` included, unless `T` is an `Option`) is `invalid`.
    pub fn get<T: FromValue>(&self, column: &str) -> Result<T, Error> {
        let value = self
            .value(column)
            .ok_or_else(|| error::invalid(format!("no column `{column}` in the result")))?;
        // The value itself stays out of the message: it may be a secret (a password hash).
        T::from_value(value).ok_or_else(|| {
            error::invalid(format!(
                "column `{column}` is {}, not {}",
                value.kind(),
                std::any::type_name::<T>()
            ))
        })
    }
}

impl Value {
    /// The SQL type of this value, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Integer(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
        }
    }
}

/// A Rust type a [`Value`] converts to, for [`Row::get`].
pub trait FromValue: Sized {
    /// `None` when `value` is not of this type.
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Option<Self> {
        Some(value.clone())
    }
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }
}

/// Integer conversions that must fit (an id stored as a negative integer does not).
macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> Option<Self> {
                i64::from_value(value)?.try_into().ok()
            }
        }
    )*};
}
from_integer!(u64, i32, u32);

/// Booleans are integers on SQLite and MySQL.
impl FromValue for bool {
    fn from_value(value: &Value) -> Option<Self> {
        Some(i64::from_value(value)? != 0)
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Real(r) => Some(*r),
            // A whole number in a REAL column may come back as an integer.
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}

/// `NULL` is `None`; anything else must convert to `T`.
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Integer(i.into())
    }
}

impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Value::Integer(i.into())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Integer(b.into())
    }
}

impl From<f64> for Value {
    fn from(r: f64) -> Self {
        Value::Real(r)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Value::Blob(b.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Blob(b)
    }
}

/// `None` is `NULL`.
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_by_column() {
        let rows = Rows {
            columns: vec!["id".into(), "name".into(), "note".into()],
            rows: vec![vec![10001.into(), "micro".into(), None::<String>.into()]],
        };
        let row = rows.first().unwrap();
        assert_eq!(row.get::<u64>("id").unwrap(), 10001);
        assert_eq!(row.get::<String>("name").unwrap(), "micro");
        assert_eq!(row.get::<Option<String>>("note").unwrap(), None);
        assert!(row.get::<String>("note").is_err());
        assert!(row.get::<i64>("name").is_err());
        assert!(row.get::<i64>("missing").is_err());
    }

    #[test]
    fn negative_ids_do_not_fit_u64() {
        assert_eq!(u64::from_value(&Value::Integer(-1)), None);
    }
}
