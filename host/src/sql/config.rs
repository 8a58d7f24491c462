//! `[database]`: which database the `sql` capability connects to.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://...`, `mysql://...` or `postgres://...`; empty: SQLite in `data_dir`.
    pub url: String,
    /// Connections in the pool; unset: [`default_pool_size`].
    pub max_connections: Option<u32>,
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
            max_connections: None,
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

    /// The pool's size: `max_connections`, else the default for the database.
    pub fn pool_size(&self) -> u32 {
        self.max_connections
            .unwrap_or_else(|| default_pool_size(&self.url))
    }

    /// Every problem of the section, each with its fix.
    pub fn problems(&self) -> Vec<String> {
        if self.max_connections == Some(0) {
            return vec!["[database] max_connections must be at least 1 (or left out)".into()];
        }
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

/// The pool size when `max_connections` is left out. SQLite runs in this process, one sqlx
/// worker thread per connection: more connections than cores cannot run more statements at
/// once, they only spread the work over more threads that sleep and are woken per statement
/// (measured in bench/RESULTS.md, stop 29). A database server gets 10, sqlx's own default.
pub fn default_pool_size(url: &str) -> u32 {
    if url.is_empty() || url.starts_with("sqlite:") {
        std::thread::available_parallelism().map_or(1, |cores| cores.get() as u32)
    } else {
        10
    }
}

/// The scheme of a URL, never its credentials (config errors are logged).
fn scheme_of(url: &str) -> &str {
    url.split_once(':').map_or("", |(scheme, _)| scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_one_connection_per_core_for_sqlite_and_ten_for_a_server() {
        let cores = std::thread::available_parallelism().unwrap().get() as u32;
        let sqlite = DatabaseConfig::default();
        assert_eq!(sqlite.pool_size(), cores);
        let file = DatabaseConfig {
            url: "sqlite:///tmp/x.db".into(),
            ..DatabaseConfig::default()
        };
        assert_eq!(file.pool_size(), cores);
        let server = DatabaseConfig {
            url: "postgres://postgres@127.0.0.1/test".into(),
            ..DatabaseConfig::default()
        };
        assert_eq!(server.pool_size(), 10);
        let chosen = DatabaseConfig {
            max_connections: Some(3),
            ..server
        };
        assert_eq!(chosen.pool_size(), 3);
        let zero = DatabaseConfig {
            max_connections: Some(0),
            ..DatabaseConfig::default()
        };
        assert_eq!(zero.problems().len(), 1);
    }
}
