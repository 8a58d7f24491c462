//! A plugin's own config values as a capability: the `config` import reads only what
//! `[plugin.<name>.config]` and `[plugin.<name>.secrets]` give it, as the config in force
//! when its instance was prepared (a change applied while the host runs is seen by the next
//! request). Secrets are read like values but never shown by the admin API or logged.

mod host;

use std::sync::Arc;

use serde::Serialize;
use wasmtime::component::{HasSelf, Linker};

use crate::capability::{
    Capability, InitError, Invocation, NoSection, PluginSpec, Shared, StateOf,
};
use crate::settings::PluginValues as Values;

/// The capability; the values live in each plugin's grant.
pub struct PluginConfig;

/// One plugin's values, shared by its instances. The admin API sees the names of its
/// plain values, never a value nor a secret's name.
#[derive(Debug, Clone, Default)]
pub struct ValuesGrant(Arc<Values>);

impl Serialize for ValuesGrant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("config", &self.0.config.keys().collect::<Vec<_>>())?;
        map.end()
    }
}

/// Per-instance state of the `config` import.
pub struct ConfigState {
    plugin: Arc<str>,
    values: Arc<Values>,
}

impl Capability for PluginConfig {
    const NAME: &'static str = "config";
    const GRANT_KEYS: &'static [&'static str] = &["config", "secrets"];
    const RESTART_ONLY: bool = false;
    type Config = NoSection;
    type Grant = ValuesGrant;
    type State = ConfigState;

    async fn init(_: &NoSection, _shared: &mut Shared<'_>) -> Result<Self, InitError> {
        Ok(Self)
    }

    fn link<T: StateOf<ConfigState>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        use crate::bindings::micro_api::host::config;
        config::add_to_linker::<T, HasSelf<ConfigState>>(linker, T::state)
    }

    fn configure(_: &NoSection, plugin: &PluginSpec<'_>) -> Result<ValuesGrant, Vec<String>> {
        Ok(ValuesGrant(Arc::new(plugin.grant(Self::GRANT_KEYS)?)))
    }

    fn prepare(&self, grant: &ValuesGrant, invocation: &Invocation<'_>) -> ConfigState {
        ConfigState {
            plugin: invocation.plugin.clone(),
            values: grant.0.clone(),
        }
    }
}
