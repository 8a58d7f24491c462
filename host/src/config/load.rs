//! Reading the layers: built-in defaults < `config.toml` < environment variables named
//! `MICRO_API__SECTION__KEY` (double underscore between levels, so test variables such as
//! `MICRO_API_TEST_MYSQL_URL` never collide) < the etcd layer, each value remembered with
//! its layer; then relative paths resolved against the file's folder, and the whole
//! validated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Config, ConfigError, ENV_PREFIX, layers};

impl Config {
    /// Reads `path` (defaults only when it is `None`), applies the environment, resolves
    /// relative paths against the file's folder, and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        Self::load_layered(path, &env, &BTreeMap::new()).map(|layered| layered.config)
    }

    /// Every layer: the file at `path`, then the environment, then `store` (the etcd
    /// layer: `section/key` paths to values), each value remembered with its layer.
    pub fn load_layered(
        path: Option<&Path>,
        env: &[(String, String)],
        store: &BTreeMap<String, String>,
    ) -> Result<layers::Layered, ConfigError> {
        let shown = path.map_or_else(|| PathBuf::from("<defaults>"), Path::to_path_buf);
        let mut doc = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse {
                        path: shown.clone(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        let mut origins = layers::Origins::default();
        origins.record(&doc, layers::Layer::File);
        let mut env_doc = toml::Table::new();
        for (name, value) in env {
            if let Some(key) = name.strip_prefix(ENV_PREFIX) {
                let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
                let name = format!("environment variable {name}");
                // A secret is a string as it is, as in the etcd layer: an all-digit one read
                // as a TOML integer would fail the type check, and the error would quote it.
                let verbatim = layers::is_secret_key(&path.join("/"));
                apply_override(&mut env_doc, &name, &path, value, verbatim)?;
            }
        }
        let mut store_doc = toml::Table::new();
        for (key, value) in store {
            let path: Vec<String> = key.split('/').map(str::to_string).collect();
            // A secret is a string as it is: never parsed, so no error can quote it.
            let verbatim = layers::is_secret_key(key);
            apply_override(
                &mut store_doc,
                &format!("etcd key {key}"),
                &path,
                value,
                verbatim,
            )?;
        }
        for (layer, overrides) in [
            (layers::Layer::Env, env_doc),
            (layers::Layer::Etcd, store_doc),
        ] {
            origins.record(&overrides, layer);
            layers::merge(&mut doc, overrides);
        }
        refuse_unknown_sections(&doc).map_err(|message| ConfigError::Parse {
            path: shown.clone(),
            message,
        })?;
        let mut config: Config =
            Config::deserialize(toml::Value::Table(doc)).map_err(|e| ConfigError::Parse {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        let base = path
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        config.resolve_paths(&base);
        let problems = config.validate();
        if problems.is_empty() {
            Ok(layers::Layered { config, origins })
        } else {
            Err(ConfigError::Invalid {
                path: shown,
                problems,
            })
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.data_dir);
        resolve(&mut self.plugins.dir);
        if let Some(tls) = &mut self.cluster.tls {
            // Unset stays unset, for validation to say so.
            for file in [&mut tls.cert, &mut tls.key, &mut tls.ca] {
                if !file.as_os_str().is_empty() {
                    resolve(file);
                }
            }
        }
        if self.plugins.cache_dir.as_os_str().is_empty() {
            self.plugins.cache_dir = self.data_dir.join("cache");
        } else {
            resolve(&mut self.plugins.cache_dir);
        }
        let auth = &mut self.capabilities.auth;
        if auth.key_file.as_os_str().is_empty() {
            auth.key_file = self.data_dir.join("signing.key");
        } else {
            resolve(&mut auth.key_file);
        }
        let telemetry = &mut self.capabilities.telemetry;
        if !telemetry.log_dir.as_os_str().is_empty() {
            resolve(&mut telemetry.log_dir);
        }
        let database = &mut self.capabilities.database;
        if database.url.is_empty() {
            database.url = format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("micro-api.db").display()
            );
        }
    }
}

/// The top-level sections are the root's and the capabilities' (whose sections are
/// flattened into the root, so serde cannot refuse the others by itself).
fn refuse_unknown_sections(doc: &toml::Table) -> Result<(), String> {
    let known: Vec<&str> = Config::SECTIONS
        .iter()
        .copied()
        .chain(crate::runtime::CapabilityConfigs::sections())
        .collect();
    match doc.keys().find(|key| !known.contains(&key.as_str())) {
        None => Ok(()),
        Some(unknown) => Err(format!(
            "unknown section `{unknown}`, expected one of {}",
            known.join(", ")
        )),
    }
}

/// Sets the value at `path` (`["section", "key"]`) in the document, from the variable or
/// etcd key `name`. The value is read as a TOML value when it is one (numbers, booleans,
/// arrays, inline tables) and as a string otherwise, or always as a string when `verbatim`.
fn apply_override(
    doc: &mut toml::Table,
    name: &str,
    path: &[String],
    value: &str,
    verbatim: bool,
) -> Result<(), ConfigError> {
    if path.iter().any(String::is_empty) {
        return Err(ConfigError::Env {
            name: name.into(),
            message: "empty section or key; use MICRO_API__SECTION__KEY or section/key".into(),
        });
    }
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .filter(|_| !verbatim)
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.into()));
    let (last, sections) = path.split_last().expect("split of a non-empty key");
    let mut table = doc;
    for section in sections {
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| ConfigError::Env {
            name: name.into(),
            message: format!("{section} is not a section"),
        })?;
    }
    table.insert(last.clone(), parsed);
    Ok(())
}
