//! `[database]`: which database the `sql` capability connects to.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://...`, `mysql://...` or `postgres://...`; empty: SQLite in `data_dir`.
    pub url: String,
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 10,
        }
    }
}

impl DatabaseConfig {
    /// Every problem of the section, each with its fix.
    pub fn problems(&self) -> Vec<String> {
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
