//! `micro-api check <file.wasm>`: the world a component targets, what it imports, and the
//! verdict the host would give it at load under the current config. The verdict comes from
//! [`Loader::validate`], the function the host itself runs, never from a copy of it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::capability::World;
use crate::config::Config;
use crate::runtime::{HttpExport, LoadError, Loader, RuntimeError, Shape, plugin_name};
use crate::settings::PluginSection;

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not named like a plugin: use <name>.wasm, or --name")]
    NoName { path: PathBuf },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// What `check` found out about one component.
#[derive(Debug)]
pub struct Report {
    /// The plugin name the component is checked as.
    pub name: String,
    /// `None` when the bytes are not a component at all (see `verdict`).
    pub shape: Option<Shape>,
    /// Ok with the world when the host would load it; else the reason it would refuse it.
    pub verdict: Result<World, LoadError>,
}

impl Report {
    pub fn accepted(&self) -> bool {
        self.verdict.is_ok()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "plugin: {}", self.name)?;
        if let Some(shape) = &self.shape {
            match shape.world {
                Some(World::Service) => writeln!(f, "world: service")?,
                Some(World::Http) => writeln!(f, "world: http")?,
                Some(World::Subscriber) => writeln!(f, "world: subscriber")?,
                None => writeln!(f, "world: unknown")?,
            }
            if let Some(export) = shape.http {
                let how = match export {
                    HttpExport::P2 => "WASI 0.2: a fresh instance per request unless reuse is on",
                    HttpExport::P3 => "WASI 0.3: instances reused unless reuse = false",
                };
                writeln!(f, "exports: {} ({how})", export.interface())?;
            }
            writeln!(f, "imports:")?;
            for import in shape.imports.iter() {
                writeln!(f, "  {import}")?;
            }
        }
        match &self.verdict {
            Ok(_) => write!(
                f,
                "verdict: ok, [plugin.{}] grants what it imports",
                self.name
            ),
            // One line per problem, each with its fix.
            Err(LoadError::Refused(problems)) => {
                let lines: Vec<String> = problems
                    .iter()
                    .map(|p| format!("verdict: refused: {p}"))
                    .collect();
                write!(f, "{}", lines.join("\n"))
            }
            Err(reason) => write!(f, "verdict: refused: {reason}"),
        }
    }
}

/// Checks the component at `path` as the plugin `name` (default: the name the host gives
/// the file) under `config`, compiling it as the host does (through its compile cache).
pub fn check(config: &Config, path: &Path, name: Option<&str>) -> Result<Report, CheckError> {
    let name = match name {
        Some(name) => name.to_string(),
        None => plugin_name(path).ok_or_else(|| CheckError::NoName {
            path: path.to_path_buf(),
        })?,
    };
    let bytes = std::fs::read(path).map_err(|source| CheckError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let loader = Loader::new(&config.plugins.cache_dir, config.plugins.pool)?;
    let component = match loader.compile(&bytes) {
        Ok(component) => component,
        Err(e) => {
            return Ok(Report {
                name,
                shape: None,
                verdict: Err(LoadError::Compile(format!("{e:#}"))),
            });
        }
    };
    let shape = loader.shape(&component);
    let settings = config.plugin_settings();
    let empty = PluginSection::default();
    let verdict = loader
        .validate(
            &name,
            &component,
            &shape,
            settings.for_plugin(&name, &empty),
        )
        .map(|(world, _, _)| world);
    Ok(Report {
        name,
        shape: Some(shape),
        verdict,
    })
}
