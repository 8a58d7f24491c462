//! micro-api: an API gateway that runs its services as WebAssembly components.
//!
//! Read top-down, a request goes:
//! - [`server`]: `micro-api serve` starts the [`host::Host`] and binds the listeners, each
//!   served by [`front::serve`] with limits of its own;
//! - [`front`]: the [`front::Gateway`] routes the request ([`front::router`]) through its
//!   steps (token, body, login limit) to an HTTP plugin;
//! - [`runtime`]: a fresh store and instance run the plugin ([`runtime::invoke`]), prepared
//!   from the one list of capabilities ([`runtime::capabilities`]);
//! - the plugin calls host capabilities, one module each of one shape ([`capability`]):
//!   [`rpc`] (through the [`breaker`], dispatched by [`node`]), [`registry`], [`sql`],
//!   [`crypto`], [`plugin_config`], [`wasi_config`], [`broker`], [`outbound`] and
//!   [`plugin_telemetry`] (over the host's own [`telemetry`]);
//! - [`plugins`] is the lifecycle: reloading the folder, probation and rollback;
//! - [`config`] reads and watches the layered config; [`host`] applies a change from the
//!   top; [`admin`] is the admin listener;
//! - [`authoring`] holds the plugin authors' commands: `new`, `build`, `check`.

pub mod admin;
pub mod authoring;
pub mod bindings;
pub mod breaker;
pub mod broker;
pub mod capability;
pub mod config;
pub mod crypto;
pub mod front;
pub mod host;
pub mod node;
pub mod outbound;
pub mod plugin_config;
pub mod plugin_telemetry;
pub mod plugins;
pub mod private_file;
pub mod registry;
pub mod rpc;
pub mod runtime;
pub mod server;
pub mod settings;
pub mod sql;
pub mod telemetry;
pub mod wasi_config;
