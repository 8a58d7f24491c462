//! `wasi:config/store` as a capability: components written for wasmtime or wasmCloud read
//! their config through the standard interface, served from the same values as the
//! `config` import (`[plugin.<name>.config]` and `[plugin.<name>.secrets]`), so there is
//! one source of truth and a live change is seen by the next request.
//!
//! Deny by default: a component importing `wasi:config/store` needs `wasi_config = true`.
//! `get` reads values and secrets alike (a missing key is `none`, as the interface says);
//! `get-all` lists the plain values, and the secrets too only when `[wasi_config]
//! secrets_in_get_all` says so, so a component that dumps its config cannot leak them by
//! default. This module is the whole capability: its WIT glue, grant and section.

mod host;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker};

use crate::capability::{Capability, InitError, Invocation, PluginSpec, Shared, StateOf};
use crate::settings::PluginValues as Values;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "wasi:config/imports",
        imports: { default: async },
    });
}

pub use bindings::wasi::config::store::Error;

/// `[wasi_config]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WasiConfigSection {
    /// Whether `get-all` lists a plugin's secrets beside its values (`get` reads both).
    pub secrets_in_get_all: bool,
}

/// The capability; the values live in each plugin's grant.
pub struct WasiConfig;

/// Whether one plugin may read its values through `wasi:config/store`, and the values.
#[derive(Debug, Clone, Default)]
pub struct WasiConfigGrant {
    enabled: bool,
    values: Arc<Values>,
    secrets_in_get_all: bool,
}

impl Serialize for WasiConfigGrant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("wasi_config", &self.enabled)?;
        map.end()
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Written {
    wasi_config: bool,
}

/// Per-instance state of `wasi:config/store`.
pub struct WasiConfigState {
    plugin: Arc<str>,
    grant: WasiConfigGrant,
}

impl Capability for WasiConfig {
    const NAME: &'static str = "wasi_config";
    const GRANT_KEYS: &'static [&'static str] = &["wasi_config"];
    const RESTART_ONLY: bool = false;
    type Config = WasiConfigSection;
    type Grant = WasiConfigGrant;
    type State = WasiConfigState;

    async fn init(_: &WasiConfigSection, _shared: &mut Shared<'_>) -> Result<Self, InitError> {
        Ok(Self)
    }

    fn link<T: StateOf<WasiConfigState>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        use bindings::wasi::config::store;
        store::add_to_linker::<T, HasSelf<WasiConfigState>>(linker, T::state)
    }

    fn configure(
        section: &WasiConfigSection,
        plugin: &PluginSpec<'_>,
    ) -> Result<WasiConfigGrant, Vec<String>> {
        let Written { wasi_config } = plugin.grant(Self::GRANT_KEYS)?;
        let fix = "add `wasi_config = true` to let it read its [plugin.<name>.config] values";
        plugin.require("wasi:config/store", wasi_config, fix)?;
        // The values are the `config` capability's keys, read here as they are written.
        let values: Values = plugin.grant(&["config", "secrets"])?;
        Ok(WasiConfigGrant {
            enabled: wasi_config,
            values: Arc::new(values),
            secrets_in_get_all: section.secrets_in_get_all,
        })
    }

    fn prepare(&self, grant: &WasiConfigGrant, invocation: &Invocation<'_>) -> WasiConfigState {
        WasiConfigState {
            plugin: invocation.plugin.clone(),
            grant: grant.clone(),
        }
    }
}
