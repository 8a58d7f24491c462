//! The components the tests run (built from the repo by `cargo xtask test`) and the
//! configs that route to them.

use std::path::{Path, PathBuf};

/// Where `cargo xtask test` put the components.
pub fn components_dir() -> PathBuf {
    std::env::var_os("MICRO_API_TEST_COMPONENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/plugin")
        })
}

/// The component of crate `name` (`user-api` -> `user_api.wasm`).
pub fn component(name: &str) -> PathBuf {
    let path = components_dir().join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo xtask test`, which builds the components",
        path.display()
    );
    path
}

/// The seed's plugins with their grants and route, as `config.toml` ships them.
pub const SEED_CONFIG: &str = r#"
[[route]]
path = "/user/login"
methods = ["POST"]
plugin = "user-api"

[plugin.user-api]
rpc = ["user", "auth"]
publish = ["user.login"]

[plugin.user]
sql = true
crypto = ["passwords"]

[plugin.auth]
crypto = ["access-tokens"]
"#;

/// probe-http routed under /probe, granted rpc to probe; probe granted rpc to itself.
pub const PROBES: &str = r#"
[[route]]
path = "/probe/{*rest}"
plugin = "probe-http"

[plugin.probe-http]
rpc = ["probe"]
limits = { deadline_ms = 10000 }

[plugin.probe]
rpc = ["probe"]
sql = true
config = { greeting = "hello" }
"#;

/// probe-http routed under /probe and granted rpc to `services`, so that
/// `POST /probe/call/{service}/{method}` calls them.
pub fn probe_calling(services: &[&str]) -> String {
    format!(
        "[[route]]\npath = \"/probe/{{*rest}}\"\nplugin = \"probe-http\"\n\n[plugin.probe-http]\nrpc = {services:?}\n"
    )
}

pub const SEED_PLUGINS: &[&str] = &["auth", "user", "user-api"];

/// A signing key the tests know, to verify tokens independently of the host.
pub const TEST_SIGNING_KEY: &str = "test-signing-key-0123456789abcdef0123456789";
