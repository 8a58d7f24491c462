//! micro-api: an API gateway that runs its services as WebAssembly components.
//!
//! Read top-down, a request goes:
//! - [`server`]: `micro-api serve` builds the [`app::App`] and binds the listeners;
//! - [`front`]: the HTTP front routes the request ([`front::router`]) to an HTTP plugin;
//! - [`runtime`]: a fresh store and instance run the plugin ([`runtime::invoke`]);
//! - the plugin calls host capabilities, one module each with the same shape (state
//!   prepared per instance from the plugin's grants, a `host.rs` with the WIT glue, backends
//!   behind a trait): [`rpc`] (through [`rpc::breaker`]), [`registry`], [`sql`], [`crypto`],
//!   [`config`], [`broker`], [`telemetry`];
//! - [`plugins`] is the lifecycle: loading, validating and publishing components;
//! - [`admin`] is the admin listener;
//! - [`authoring`] holds the plugin authors' commands: `new`, `build`, `check`.

pub mod admin;
pub mod app;
pub mod authoring;
pub mod bindings;
pub mod broker;
pub mod config;
pub mod crypto;
pub mod front;
pub mod outbound;
pub mod plugins;
pub mod registry;
pub mod rpc;
pub mod runtime;
pub mod server;
pub mod sql;
pub mod telemetry;
