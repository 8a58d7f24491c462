//! `[auth]`: the token signing key (or the file holding it), and the claims every token
//! carries.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The token signing key itself (better from `MICRO_API__AUTH__SIGNING_KEY`).
    pub signing_key: Option<String>,
    /// A file holding the key; empty: `<data_dir>/signing.key`, created at first start.
    pub key_file: PathBuf,
    pub issuer: String,
    pub audience: String,
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
