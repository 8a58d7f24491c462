//! `micro-api new <name> --kind http|service|subscriber`: a plugin crate that builds as it is, from
//! the templates in `host/templates/` (a commented `src/lib.rs` per kind, one `Cargo.toml`),
//! plus the config lines that route or register it, printed or appended to the config.
//!
//! The crate depends on the SDK by path, and gets a `[workspace]` of its own so it never
//! joins (or breaks) a workspace whose folder it is created in. It also starts from the
//! repo's `rust-toolchain.toml` and `Cargo.lock`, so it builds with the toolchain and the
//! dependency versions the SDK is tested with.

use std::path::{Path, PathBuf};

/// The kinds of plugin `new` scaffolds, one per world of `wit/host.wit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Reached through a [[route]]: the standard wasi:http incoming handler.
    Http,
    /// Called by name through rpc: exports micro-api:host/handler.
    Service,
    /// Handed the broker's messages of its topics: exports micro-api:host/message-handler.
    Subscriber,
}

impl Kind {
    fn lib_rs(self) -> &'static str {
        match self {
            Kind::Http => include_str!("../../templates/http.rs"),
            Kind::Service => include_str!("../../templates/service.rs"),
            Kind::Subscriber => include_str!("../../templates/subscriber.rs"),
        }
    }

    fn config_lines(self) -> &'static str {
        match self {
            Kind::Http => include_str!("../../templates/http.toml"),
            Kind::Service => include_str!("../../templates/service.toml"),
            Kind::Subscriber => include_str!("../../templates/subscriber.toml"),
        }
    }
}

const CARGO_TOML: &str = include_str!("../../templates/Cargo.toml.in");

/// Where the SDK is in the repo this binary was built from.
pub fn default_sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk")
}

#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error(
        "{0:?} is not a plugin name: use lowercase letters, digits and single dashes, starting with a letter (the host reads `_` in file names as `-`)"
    )]
    BadName(String),
    #[error("{0} already exists and is not empty: choose another name or --path")]
    Exists(PathBuf),
    #[error(
        "the SDK is not at {0} (this binary was built from another checkout): pass --sdk <path to plugins/sdk>"
    )]
    NoSdk(PathBuf),
    #[error("{path} already has {what}: remove it or register by hand")]
    AlreadyRegistered { path: PathBuf, what: String },
    #[error("{path} is not valid TOML: {message}")]
    BadConfig { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What to scaffold.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    pub name: String,
    pub kind: Kind,
    /// The crate's folder.
    pub dir: PathBuf,
    /// The SDK crate's folder.
    pub sdk: PathBuf,
}

/// What `scaffold` wrote.
#[derive(Debug)]
pub struct Scaffolded {
    pub dir: PathBuf,
    /// The `config.toml` lines that route (http), register (service) or subscribe
    /// (subscriber) the plugin.
    pub config_lines: String,
}

/// Whether `name` is usable as a crate, file and plugin name alike.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Writes the crate: `Cargo.toml`, `src/lib.rs`, and the SDK repo's `rust-toolchain.toml`
/// and `Cargo.lock`.
pub fn scaffold(plugin: &NewPlugin) -> Result<Scaffolded, NewError> {
    if !valid_name(&plugin.name) {
        return Err(NewError::BadName(plugin.name.clone()));
    }
    let sdk = plugin
        .sdk
        .canonicalize()
        .ok()
        .filter(|sdk| sdk.join("Cargo.toml").is_file())
        .ok_or_else(|| NewError::NoSdk(plugin.sdk.clone()))?;
    let dir = &plugin.dir;
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(NewError::Exists(dir.clone()));
    }
    let sdk_path = toml::Value::String(sdk.display().to_string()).to_string();
    let cargo_toml = CARGO_TOML
        .replace("{{name}}", &plugin.name)
        .replace("{{sdk}}", &sdk_path);
    write(&dir.join("Cargo.toml"), &cargo_toml)?;
    write(&dir.join("src/lib.rs"), plugin.kind.lib_rs())?;
    // The repo's toolchain (which rustup installs with the wasm32-wasip2 target) and its
    // lock file: cargo keeps the versions it finds locked and drops the packages this crate
    // does not use, so the crate builds with what the SDK is tested with, and a shared
    // target folder reuses what the repo's builds compiled.
    for file in ["rust-toolchain.toml", "Cargo.lock"] {
        if let Ok(text) = std::fs::read_to_string(sdk.join("../..").join(file)) {
            write(&dir.join(file), &text)?;
        }
    }
    Ok(Scaffolded {
        dir: dir.clone(),
        config_lines: plugin.kind.config_lines().replace("{{name}}", &plugin.name),
    })
}

/// Appends `lines` (for the plugin `name`) to the config file at `path`, unless the file
/// already configures that plugin or routes its path.
pub fn register(path: &Path, name: &str, lines: &str) -> Result<(), NewError> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let bad_config = |e: toml::de::Error| NewError::BadConfig {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let current: toml::Table = existing.parse().map_err(bad_config)?;
    let added: toml::Table = lines.parse().map_err(bad_config)?;
    let already = |what: String| NewError::AlreadyRegistered {
        path: path.to_path_buf(),
        what,
    };
    if current.get("plugin").and_then(|p| p.get(name)).is_some() {
        return Err(already(format!("a [plugin.{name}] section")));
    }
    let routes = |t: &toml::Table| -> Vec<String> {
        t.get("route")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("path")?.as_str().map(str::to_owned))
            .collect()
    };
    let routed = routes(&current);
    if let Some(path) = routes(&added).into_iter().find(|p| routed.contains(p)) {
        return Err(already(format!("a [[route]] for {path}")));
    }
    let separator = if existing.is_empty() || existing.ends_with("\n\n") {
        ""
    } else if existing.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    write(path, &format!("{existing}{separator}{lines}"))
}

fn write(path: &Path, text: &str) -> Result<(), NewError> {
    let failed = |source| NewError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    std::fs::write(path, text).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_crate_file_and_plugin_names() {
        for good in ["hello", "my-plugin", "v2", "a1-b2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Hello",
            "my_plugin",
            "-a",
            "a-",
            "a--b",
            "1a",
            "a b",
            "ä",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn every_template_is_valid_once_filled() {
        // Every kind `--kind` accepts, so a new kind cannot skip this check.
        for kind in <Kind as clap::ValueEnum>::value_variants() {
            let lines = kind.config_lines().replace("{{name}}", "my-plugin");
            let table: toml::Table = lines.parse().unwrap();
            assert!(table["plugin"].get("my-plugin").is_some(), "{lines}");
        }
        let manifest: toml::Table = CARGO_TOML
            .replace("{{name}}", "my-plugin")
            .replace("{{sdk}}", "\"/sdk\"")
            .parse()
            .unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some("my-plugin"));
        assert_eq!(
            manifest["dependencies"]["micro-api-sdk"]["path"].as_str(),
            Some("/sdk")
        );
    }

    #[test]
    fn register_appends_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "# mine\n[server]\nbody_limit = 10").unwrap();
        let lines = Kind::Http.config_lines().replace("{{name}}", "greet");
        register(&config, "greet", &lines).unwrap();
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(
            text.starts_with("# mine\n[server]\nbody_limit = 10\n\n# greet"),
            "{text}"
        );
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["route"][0]["plugin"].as_str(), Some("greet"));
        let again = register(&config, "greet", &lines).unwrap_err();
        assert!(again.to_string().contains("[plugin.greet]"), "{again}");
        assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
    }
}
