//! From a component's bytes to a [`Plugin`]: compile (through the cache), read its shape
//! (world and imports), check it against its grants and limits, and pre-instantiate it.
//! `micro-api check` runs the same steps, so its verdict is the host's.
//!
//! A plugin's world is read from its exports: `micro-api:host/handler` makes a service,
//! `wasi:http/incoming-handler@0.2` or `wasi:http/handler@0.3` an HTTP handler,
//! `micro-api:host/message-handler` a subscriber. Validation is deny-by-default: every capability checks the plugin's imports
//! against its grants, and every problem is reported with its fix.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::capabilities::{Capabilities, CapabilityConfigs};
use super::limits::{LimitsConfig, LimitsOverrides};
use super::plugin::{Configured, Entry, Plugin, version_of};
use super::reuse::{ReuseShape, ReuseWritten, Reused};
use super::{Loader, PluginState, Runtime};
use wasmtime_wasi_http::handler::ProxyPre;

use crate::bindings::{ServicePre, SubscriberPre};
use crate::capability::{Imports, PluginSpec, World};
use crate::settings::PluginSection;

/// The `[plugin.<name>]` keys the runtime itself reads (the WASI base and the limits).
pub const RUNTIME_KEYS: &[&str] = &["limits", "env", "reuse"];

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    #[error("not a valid component: {0}")]
    Compile(String),
    #[error(
        "exports none of micro-api:host/handler (service world), wasi:http/incoming-handler@0.2 or wasi:http/handler@0.3 (http world), micro-api:host/message-handler (subscriber world)"
    )]
    UnknownWorld,
    /// What its grants do not allow, each problem with its fix.
    #[error("{}", .0.join("; "))]
    Refused(Vec<String>),
    #[error("cannot be instantiated here: {0}")]
    Instantiate(String),
    #[error(
        "limits.memory_mb = {asked} is above the pool's slot size of {slot} MiB; lower it or raise [plugins.pool] memory_mb (a restart applies pool sizes)"
    )]
    AbovePool { asked: u64, slot: u64 },
}

/// What a plugin is loaded under: its section, the default limits, every capability's
/// section.
#[derive(Clone, Copy)]
pub struct LoadSettings<'a> {
    pub section: &'a PluginSection,
    pub defaults: LimitsConfig,
    pub capabilities: &'a CapabilityConfigs,
}

/// What a compiled component looks like from outside: the world its exports make it, and
/// the interfaces it imports. Read before any grant is looked at, so `micro-api check` can
/// show it for a component the config refuses.
#[derive(Debug, Clone)]
pub struct Shape {
    /// `None`: it exports no known world's entry point.
    pub world: Option<World>,
    /// The `wasi:http` handler it exports, for the http world.
    pub http: Option<HttpExport>,
    pub imports: Imports,
    /// It uses component-model concurrency (WASI 0.3), so runs on the concurrent engine.
    pub concurrent: bool,
}

/// Which `wasi:http` handler an HTTP plugin exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpExport {
    /// `wasi:http/incoming-handler@0.2`: one synchronous call per request.
    P2,
    /// `wasi:http/handler@0.3`: an `async func`, so requests may overlap on one instance.
    P3,
}

impl HttpExport {
    pub fn interface(self) -> &'static str {
        match self {
            Self::P2 => "wasi:http/incoming-handler@0.2",
            Self::P3 => "wasi:http/handler@0.3",
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RuntimeGrant {
    /// Its limits; unset ones come from `[plugins.limits]`.
    limits: LimitsOverrides,
    /// Environment variables it sees (none otherwise).
    env: BTreeMap<String, String>,
    /// Whether its instances serve more than one request (HTTP plugins only).
    reuse: Option<ReuseWritten>,
}

impl Loader {
    /// Compiles `bytes` (or loads the cached compilation of the same bytes) with the sync
    /// engine, or, when the component uses component-model concurrency (which that engine
    /// refuses while validating, before compiling anything), with the concurrent one.
    pub fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        self.compile_on(false, bytes)
            .or_else(|_| self.compile_on(true, bytes))
    }

    fn compile_on(&self, concurrent: bool, bytes: &[u8]) -> wasmtime::Result<Component> {
        let kit = self.kit(concurrent);
        kit.cache.load_or_compile(&kit.engine, bytes)
    }

    pub fn shape(&self, component: &Component) -> Shape {
        let engine = component.engine();
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        let exported = |prefix: &str| exports.iter().any(|e| e.starts_with(prefix));
        let http = if exported("wasi:http/handler@0.3") {
            Some(HttpExport::P3)
        } else if exported("wasi:http/incoming-handler@0.2") {
            Some(HttpExport::P2)
        } else {
            None
        };
        let world = if exported("micro-api:host/handler@") {
            Some(World::Service)
        } else if http.is_some() {
            Some(World::Http)
        } else if exported("micro-api:host/message-handler@") {
            Some(World::Subscriber)
        } else {
            None
        };
        let imports = ty
            .imports(engine)
            .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
            .map(|(n, _)| n.to_string());
        Shape {
            world,
            http,
            imports: Imports::new(imports),
            concurrent: Engine::same(engine, &self.kit(true).engine),
        }
    }

    /// The grants and limits of the plugin `name` of this shape under `settings`.
    pub fn configure(
        &self,
        name: &str,
        world: World,
        http: Option<HttpExport>,
        imports: &Imports,
        settings: LoadSettings<'_>,
    ) -> Result<Configured, LoadError> {
        let RuntimeGrant { limits, env, reuse } = settings
            .section
            .read(name, RUNTIME_KEYS)
            .map_err(|e| LoadError::Refused(vec![e]))?;
        let reuse = match http {
            Some(export) => {
                let reuse_shape = ReuseShape {
                    asynchronous: export == HttpExport::P3,
                    imports_host: imports.iter().any(|i| i.starts_with("micro-api:host/")),
                };
                ReuseWritten::resolve(reuse, reuse_shape, name)
                    .map_err(|e| LoadError::Refused(vec![e]))?
            }
            None if reuse.is_some() => {
                return Err(LoadError::Refused(vec![format!(
                    "[plugin.{name}] reuse applies to HTTP plugins only: remove it"
                )]));
            }
            None => None,
        };
        let limits = limits.over(settings.defaults);
        let slot = self.pool.memory_mb;
        if limits.memory_mb > slot {
            return Err(LoadError::AbovePool {
                asked: limits.memory_mb,
                slot,
            });
        }
        let spec = PluginSpec {
            name,
            world: Some(world),
            section: settings.section,
            imports,
        };
        let grants =
            Capabilities::configure(settings.capabilities, &spec).map_err(LoadError::Refused)?;
        Ok(Configured {
            limits,
            env: env.into_iter().collect(),
            reuse,
            grants,
        })
    }

    /// The load-time validation of a compiled component as the plugin `name`: its world is
    /// known, its limits fit the pool, its imports are granted, and the linker can
    /// instantiate it. [`Runtime::load`] and `micro-api check` both run this.
    pub fn validate(
        &self,
        name: &str,
        component: &Component,
        shape: &Shape,
        settings: LoadSettings<'_>,
    ) -> Result<(World, Entry, Configured), LoadError> {
        let world = shape.world.ok_or(LoadError::UnknownWorld)?;
        let configured = self.configure(name, world, shape.http, &shape.imports, settings)?;
        let instantiate = |e: wasmtime::Error| LoadError::Instantiate(format!("{e:#}"));
        let pre = self
            .kit(shape.concurrent)
            .linker
            .instantiate_pre(component)
            .map_err(instantiate)?;
        let entry = match world {
            World::Service => Entry::Service(ServicePre::new(pre).map_err(instantiate)?),
            World::Http => Entry::Http(match shape.http {
                Some(HttpExport::P3) => ProxyPre::P3(
                    wasmtime_wasi_http::p3::bindings::ServicePre::new(pre).map_err(instantiate)?,
                ),
                _ => ProxyPre::P2(
                    wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre).map_err(instantiate)?,
                ),
            }),
            World::Subscriber => Entry::Subscriber(SubscriberPre::new(pre).map_err(instantiate)?),
        };
        Ok((world, entry, configured))
    }

    /// The WASI 0.2 HTTP component `bytes`, compiled and pre-instantiated on the concurrent
    /// engine, for its reused instances.
    fn concurrent_proxy_pre(&self, bytes: &[u8]) -> Result<ProxyPre<PluginState>, LoadError> {
        let component = self
            .compile_on(true, bytes)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let instantiate = |e: wasmtime::Error| LoadError::Instantiate(format!("{e:#}"));
        let pre = self
            .kit(true)
            .linker
            .instantiate_pre(&component)
            .map_err(instantiate)?;
        Ok(ProxyPre::P2(
            wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre).map_err(instantiate)?,
        ))
    }
}

impl Runtime {
    /// Compiles and validates `bytes`, read from `path`, as the plugin called `name`.
    pub fn load(
        self: &Arc<Self>,
        name: &str,
        path: &Path,
        bytes: &[u8],
        settings: LoadSettings<'_>,
    ) -> Result<Arc<Plugin>, LoadError> {
        let version = version_of(bytes);
        let loader = &self.loader;
        let component = loader
            .compile(bytes)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let shape = loader.shape(&component);
        let (world, entry, configured) = loader.validate(name, &component, &shape, settings)?;
        // Every HTTP plugin can reuse instances: its policy, which a config change may
        // switch, decides per request. Reused instances run on the concurrent engine
        // (wasmtime's `ProxyHandler` needs it), so a WASI 0.2 one is compiled for it too.
        let reuse_pre = match &entry {
            Entry::Http(pre) if shape.concurrent => Some(clone_pre(pre)),
            Entry::Http(_) => Some(loader.concurrent_proxy_pre(bytes)?),
            _ => None,
        };
        Ok(Arc::new_cyclic(|weak| {
            let reused = reuse_pre.map(|pre| Reused::new(self.clone(), weak.clone(), pre));
            Plugin::new(
                name,
                version,
                world,
                shape,
                path,
                entry,
                reused,
                configured,
                self.metrics.for_plugin(name),
            )
        }))
    }
}

/// `ProxyPre` is not `Clone`, though both of its pre-instances are.
fn clone_pre(pre: &ProxyPre<PluginState>) -> ProxyPre<PluginState> {
    match pre {
        ProxyPre::P2(pre) => ProxyPre::P2(pre.clone()),
        ProxyPre::P3(pre) => ProxyPre::P3(pre.clone()),
    }
}

/// The problems of the runtime's own keys of `section` (`limits`, `env`).
pub fn runtime_key_problems(name: &str, section: &PluginSection) -> Vec<String> {
    section
        .read::<RuntimeGrant>(name, RUNTIME_KEYS)
        .err()
        .into_iter()
        .collect()
}

/// The keys a `[plugin.<name>]` table may set: the runtime's and every capability's.
pub fn known_plugin_keys() -> impl Iterator<Item = &'static str> {
    RUNTIME_KEYS
        .iter()
        .copied()
        .chain(Capabilities::grant_keys())
}
