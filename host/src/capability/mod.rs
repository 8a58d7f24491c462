//! What every capability is: one unit of one shape, in the spirit of Spin's `Factor`.
//!
//! A capability (sql, rpc, crypto, ...) is a module that owns its config section, the keys
//! it grants in `[plugin.<name>]`, its WIT glue and its backends, and sees nothing but
//! those. The runtime composes them from one list (`runtime::capabilities`); the host never
//! reaches into one. Three steps, as in Spin:
//!
//! - [`Capability::init`]: once at start, from its own section (connect the database,
//!   load the keys);
//! - [`Capability::configure`]: once per plugin version at load (and again when the config
//!   changes), from its section, the plugin's grants and what its component imports:
//!   either the [`Capability::Grant`] its instances share, or every problem with its fix.
//!   It needs no running capability, so the config alone is checked the same way (with no
//!   component, no imports);
//! - [`Capability::prepare`]: per instance, from the grant and a small [`Invocation`]: the
//!   state its host functions see, through a `HasData` view of [`StateOf`].
//!
//! [`Capability::link`] adds its WIT glue to the linker once. It may link several versions
//! of an interface (`micro-api:host@0.1.0` and a later `@0.2.0`) onto the same state, and
//! concurrent (`async func`) host functions: wasmtime's generated `add_to_linker` for
//! either takes the same `fn(&mut T) -> D::Data<'_>` getter that [`StateOf`] provides.

mod invocation;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmtime::component::Linker;

pub use invocation::{CallContext, Invocation};

use crate::breaker::Breakers;
use crate::settings::PluginSection;

/// The worlds of `wit/host.wit`: what a component's exports make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    /// Exports `micro-api:host/handler`: called by name through rpc.
    Service,
    /// Exports `wasi:http/incoming-handler`: reached through a route.
    Http,
    /// Exports `micro-api:host/message-handler`: handed broker messages.
    Subscriber,
}

/// The interfaces a component imports (`micro-api:host/rpc@0.1.0`, `wasi:clocks/...`).
#[derive(Debug, Clone, Default)]
pub struct Imports(BTreeSet<String>);

impl Imports {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        Self(names.into_iter().collect())
    }

    /// The imported instance of `interface` (`micro-api:host/sql`) in any version.
    pub fn find(&self, interface: &str) -> Option<&str> {
        self.0.iter().map(String::as_str).find(|name| {
            name.strip_prefix(interface)
                .is_some_and(|v| v.starts_with('@'))
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// One plugin as a capability sees it at load: its name, world, grants and imports. When
/// the config alone is checked, no component is known: no world, no imports.
pub struct PluginSpec<'a> {
    pub name: &'a str,
    pub world: Option<World>,
    pub section: &'a PluginSection,
    pub imports: &'a Imports,
}

impl PluginSpec<'_> {
    /// The refusal of an import the plugin's section does not grant, with the fix.
    pub fn not_granted(&self, import: &str, fix: &str) -> String {
        format!(
            "imports {import}, which [plugin.{}] does not grant: {fix}",
            self.name
        )
    }

    /// Refuses an import of `interface` (in any version) that `granted` does not cover.
    pub fn require(&self, interface: &str, granted: bool, fix: &str) -> Result<(), Vec<String>> {
        match self.imports.find(interface) {
            Some(import) if !granted => Err(vec![self.not_granted(import, fix)]),
            _ => Ok(()),
        }
    }

    /// This capability's keys of the plugin's section (see [`PluginSection::read`]).
    pub fn grant<T: DeserializeOwned>(&self, keys: &[&str]) -> Result<T, Vec<String>> {
        self.section.read(self.name, keys).map_err(|e| vec![e])
    }
}

/// What every capability may use at start beside its own section.
pub struct Shared<'a> {
    /// This node's name in the registry.
    pub node_id: &'a str,
    /// Where other nodes reach this one, when it has an rpc listener.
    pub rpc_address: Option<&'a str>,
    /// The folder for the host's own files (SQLite, keys, caches).
    pub data_dir: &'a Path,
    /// The metrics registry every part registers its series in.
    pub metrics: &'a mut prometheus_client::registry::Registry,
    /// The circuit breakers, shared by every capability that calls out.
    pub breakers: &'a Arc<Breakers>,
}

/// Why a capability could not start.
#[derive(Debug, thiserror::Error)]
#[error("{capability}: {source}")]
pub struct InitError {
    pub capability: &'static str,
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl InitError {
    pub fn new(
        capability: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            capability,
            source: source.into(),
        }
    }
}

/// The store data `Self` holds the per-instance state `S` of one capability: how that
/// capability's host functions find it (the macro of `runtime::capabilities` implements
/// it once per capability).
pub trait StateOf<S>: Send + 'static {
    fn state(&mut self) -> &mut S;
}

/// One capability; see the module docs for its three steps.
pub trait Capability: Sized + Send + Sync + 'static {
    /// Its name in errors and the admin API (`sql`).
    const NAME: &'static str;
    /// The `[plugin.<name>]` keys it reads (a key no capability reads is refused).
    const GRANT_KEYS: &'static [&'static str];
    /// Whether a change of its section waits for a restart (it shaped what `init` built).
    const RESTART_ONLY: bool = true;

    /// Its config section (`[database]` for sql), with its defaults.
    type Config: Default + Clone + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What `configure` makes of one plugin's grants, shared by its instances.
    type Grant: Serialize + Send + Sync + 'static;
    /// Its per-instance state, in the store.
    type State: Send + 'static;

    /// The problems of its section, each with its fix; empty when valid.
    fn problems(_config: &Self::Config) -> Vec<String> {
        Vec::new()
    }

    fn init(
        config: &Self::Config,
        shared: &mut Shared<'_>,
    ) -> impl Future<Output = Result<Self, InitError>> + Send;

    fn link<T: StateOf<Self::State>>(linker: &mut Linker<T>) -> wasmtime::Result<()>;

    fn configure(
        config: &Self::Config,
        plugin: &PluginSpec<'_>,
    ) -> Result<Self::Grant, Vec<String>>;

    fn prepare(&self, grant: &Self::Grant, invocation: &Invocation<'_>) -> Self::State;
}

/// A config section for a capability that has none: it accepts no keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSection {}

/// The refusal every host function gives a call its plugin's grant does not cover.
pub fn forbidden(plugin: &str, what: &str, fix: &str) -> crate::bindings::Error {
    crate::bindings::Error::Forbidden(format!("{plugin} is not granted {what}; {fix}"))
}
