//! Fuzz target: the config file and environment layers, from near-valid TOML: what loads
//! also validates and routes.

use micro_api::config::Config;
use micro_api::front::router::Router;
use proptest::prelude::*;

use crate::{fuzz, glued};

const CONFIG_PIECES: &[&str] = &[
    "\n",
    "\n[server]\n",
    "\n[front]\n",
    "\n[admin]\n",
    "\n[login_limit]\n",
    "\n[[route]]\n",
    "\n[plugin.x]\n",
    "\n[plugin.x.limits]\n",
    "\n[breaker.default]\n",
    "\n[breaker.\"a.b\"]\n",
    "\n[plugins.pool]\n",
    "\n[database]\n",
    "\n[auth]\n",
    "\n[cluster]\n",
    "listen = ",
    "body_limit = ",
    "max_connections = ",
    "max_header_bytes = ",
    "header_read_timeout_ms = ",
    "token = ",
    "path = ",
    "plugin = ",
    "auth = ",
    "methods = ",
    "rpc = ",
    "http = ",
    "memory_mb = ",
    "instances = ",
    "url = ",
    "window_secs = ",
    "max_failures = ",
    "error_percent = ",
    "\"required\"",
    "\"none\"",
    "\"/a/{b}\"",
    "\"/{*r}\"",
    "\"x\"",
    "\"127.0.0.1:0\"",
    "\"sqlite::memory:\"",
    "\"oracle://\"",
    "0",
    "1",
    "-1",
    "8192",
    "4294967296",
    "18446744073709551616",
    "1e309",
    "nan",
    "true",
    "[\"GET\", \"BREW\"]",
    "[]",
    "{}",
    "{ memory_mb = 0 }",
    "\"http://127.0.0.1:*\"",
    "=",
    "[",
    "]",
    "\"",
    "'",
    "#",
    "\\u0000",
    "data_dir = \"d\"",
];

#[test]
fn config_parser() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let env = proptest::collection::vec(
        (
            prop_oneof![
                Just("MICRO_API__SERVER__BODY_LIMIT".to_string()),
                Just("MICRO_API__ADMIN__TOKEN".to_string()),
                Just("MICRO_API__FRONT__MAX_CONNECTIONS".to_string()),
                Just("MICRO_API____X".to_string()),
                Just("MICRO_API__SERVER".to_string()),
                "MICRO_API__[A-Z_]{0,20}",
            ],
            "\\PC{0,12}",
        ),
        0..3,
    );
    fuzz(
        "config parser",
        1_000,
        (glued(CONFIG_PIECES, 30), env),
        |(text, env)| {
            std::fs::write(&path, &text).unwrap();
            if let Ok(config) = Config::load_with_env(Some(&path), env) {
                prop_assert!(config.validate().is_empty());
                Router::new(&config.route);
            }
            Ok(())
        },
    );
}
