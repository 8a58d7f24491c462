//! The one list of capabilities. Everything a capability needs from the runtime is made
//! from it: its field in the store data and the `StateOf` view its host functions use, its
//! section in the config (named after its field), the linking of its WIT glue, its
//! configuration per plugin and its per-instance state.
//!
//! Adding a capability is writing its module (see `crate::capability`) and one line below.
//! The order is the order problems are reported in.

use serde::{Deserialize, Serialize};
use wasmtime::component::Linker;

use super::state::PluginState;
use crate::capability::{Capability, InitError, Invocation, PluginSpec, Shared, StateOf};

macro_rules! capabilities {
    ($($field:ident: $capability:ty,)*) => {
        /// Every capability, built once at start.
        pub struct Capabilities {
            $(pub $field: $capability,)*
        }

        /// Every capability's config section (`[<field>]`), flattened into the config.
        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        pub struct CapabilityConfigs {
            $(#[serde(default)] pub $field: <$capability as Capability>::Config,)*
        }

        /// What each capability made of one plugin's grants.
        pub struct Grants {
            $(pub $field: <$capability as Capability>::Grant,)*
        }

        /// Each capability's state in one instance's store.
        pub struct CapabilityStates {
            $(pub $field: <$capability as Capability>::State,)*
        }

        $(impl StateOf<<$capability as Capability>::State> for PluginState {
            fn state(&mut self) -> &mut <$capability as Capability>::State {
                &mut self.capabilities.$field
            }
        })*

        impl Capabilities {
            /// Starts every capability from its section.
            pub async fn init(
                configs: &CapabilityConfigs,
                shared: &mut Shared<'_>,
            ) -> Result<Self, InitError> {
                Ok(Self {
                    $($field: <$capability>::init(&configs.$field, shared).await?,)*
                })
            }

            /// Adds every capability's WIT glue to `linker`.
            pub fn link(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
                $(<$capability>::link(linker)?;)*
                Ok(())
            }

            /// Every capability's grant for `plugin`, or every problem with its fix.
            pub fn configure(
                configs: &CapabilityConfigs,
                plugin: &PluginSpec<'_>,
            ) -> Result<Grants, Vec<String>> {
                let mut problems = Vec::new();
                $(let $field = <$capability>::configure(&configs.$field, plugin)
                    .map_err(|p| problems.extend(p))
                    .ok();)*
                match ($($field,)*) {
                    ($(Some($field),)*) if problems.is_empty() => Ok(Grants { $($field,)* }),
                    _ => Err(problems),
                }
            }

            pub fn prepare(&self, grants: &Grants, invocation: &Invocation<'_>) -> CapabilityStates {
                CapabilityStates {
                    $($field: self.$field.prepare(&grants.$field, invocation),)*
                }
            }

            /// The `[plugin.<name>]` keys some capability reads.
            pub fn grant_keys() -> impl Iterator<Item = &'static str> {
                [$(<$capability as Capability>::GRANT_KEYS,)*].into_iter().flatten().copied()
            }
        }

        impl CapabilityConfigs {
            /// Every problem of every capability's section, each with its fix.
            pub fn problems(&self) -> Vec<String> {
                let mut problems = Vec::new();
                $(problems.extend(<$capability as Capability>::problems(&self.$field));)*
                problems
            }

            /// Puts back `running`'s value of every section whose change waits for a
            /// restart; returns the names of those that changed.
            pub fn keep_restart_only(&mut self, running: &Self) -> Vec<&'static str> {
                let mut pending = Vec::new();
                $(if <$capability as Capability>::RESTART_ONLY && self.$field != running.$field {
                    pending.push(stringify!($field));
                    self.$field = running.$field.clone();
                })*
                pending
            }

            /// The section names, as the config file writes them.
            pub fn sections() -> impl Iterator<Item = &'static str> {
                [$(stringify!($field),)*].into_iter()
            }
        }

        impl Grants {
            /// Every grant as the admin API shows it: one object of their keys.
            pub fn describe(&self) -> serde_json::Value {
                let mut all = serde_json::Map::new();
                $(if let Ok(serde_json::Value::Object(grant)) = serde_json::to_value(&self.$field) {
                    all.extend(grant);
                })*
                serde_json::Value::Object(all)
            }
        }
    };
}

capabilities! {
    telemetry: crate::plugin_telemetry::Telemetry,
    registry: crate::registry::Registry,
    config: crate::plugin_config::PluginConfig,
    broker: crate::broker::Broker,
    database: crate::sql::Sql,
    auth: crate::crypto::Crypto,
    outbound: crate::outbound::Outbound,
    wasi_config: crate::wasi_config::WasiConfig,
    rpc: crate::rpc::Rpc,
}
