//! `[database]`: which database the `sql` capability connects to.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://...`, `mysql://...` or `postgres://...`; empty: SQLite in `data_dir`.
    pub url: String,
    pub max_connections: u32,
    /// Rows one `sql.query` may return to a plugin; one more and the query fails `invalid`
    /// (a plugin's own `sql_max_rows` overrides it).
    pub max_rows: usize,
    /// Bytes of values one `sql.query` may return (text and blobs by length, numbers 8;
    /// a plugin's own `sql_max_bytes` overrides it).
    pub max_bytes: usize,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 10,
            max_rows: 10_000,
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

impl DatabaseConfig {
    /// The default caps of one query's result.
    pub fn caps(&self) -> super::ResultCaps {
        super::ResultCaps {
            max_rows: self.max_rows,
            max_bytes: self.max_bytes,
        }
    }

    /// Every problem of the section, each with its fix.
    pub fn problems(&self) -> Vec<String> {
        if self.max_rows == 0 || self.max_bytes == 0 {
            return vec!["[database] max_rows and max_bytes must be at least 1".into()];
        }
        let db = &self.url;
        let known = ["sqlite:", "mysql:", "mariadb:", "postgres:", "postgresql:"];
        if db.is_empty() || known.iter().any(|scheme| db.starts_with(scheme)) {
            return Vec::new();
        }
        vec![format!(
            "[database] url must start with sqlite:, mysql: or postgres: (got {:?})",
            scheme_of(db)
        )]
    }
}

/// The scheme of a URL, never its credentials (config errors are logged).
fn scheme_of(url: &str) -> &str {
    url.split_once(':').map_or("", |(scheme, _)| scheme)
}
