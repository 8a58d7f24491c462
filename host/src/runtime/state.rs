//! The data of one invocation's `Store`: the WASI base every plugin gets, plus one small
//! state per capability, each prepared from the plugin's grants (Spin's "prepare" step).
//!
//! Each capability's host functions see only their own piece, through a `HasData` view
//! (as wasmtime's `WasiView` does), so adding a capability is adding a field and a line in
//! [`add_to_linker`].

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::app::App;
use crate::plugins::Plugin;
use crate::{broker, config, crypto, outbound, registry, rpc, sql, telemetry};

/// Where an invocation stands in its call chain.
#[derive(Debug, Clone, Copy)]
pub struct CallContext {
    /// When the whole chain must be done: an rpc callee inherits what is left of it.
    pub deadline: Instant,
    /// How many rpc hops led here (0 for an HTTP request).
    pub depth: u32,
    /// The W3C trace this invocation belongs to.
    pub trace: crate::telemetry::TraceContext,
}

pub struct PluginState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: outbound::OutgoingHttp,
    table: ResourceTable,
    pub limits: StoreLimits,
    pub rpc: rpc::RpcState,
    pub sql: sql::SqlState,
    pub crypto: crypto::CryptoState,
    pub config: config::host::ConfigState,
    pub broker: broker::host::BrokerState,
    pub registry: registry::RegistryState,
    pub telemetry: telemetry::TelemetryState,
}

impl PluginState {
    pub fn new(app: &Arc<App>, plugin: &Plugin, call: CallContext) -> Self {
        let telemetry = telemetry::TelemetryState::prepare(plugin);
        // The fixed WASI base: only the granted environment, no arguments, no preopened directories,
        // no sockets; stdout and stderr go to the host log under the plugin's name.
        let wasi = WasiCtx::builder()
            .envs(&plugin.grants.env.iter().collect::<Vec<_>>())
            .stdout(telemetry.guest_output(telemetry::Stream::Stdout))
            .stderr(telemetry.guest_output(telemetry::Stream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            http_hooks: outbound::OutgoingHttp::prepare(app, plugin, call),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size((plugin.limits.memory_mb as usize) << 20)
                .trap_on_grow_failure(true)
                .build(),
            rpc: rpc::RpcState::prepare(app, plugin, call),
            sql: sql::SqlState::prepare(app, plugin),
            crypto: crypto::CryptoState::prepare(app, plugin),
            config: config::host::ConfigState::prepare(app, plugin),
            broker: broker::host::BrokerState::prepare(app, plugin),
            registry: registry::RegistryState::prepare(app),
            telemetry,
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// A `HasData` view onto one field of [`PluginState`].
macro_rules! capability_view {
    ($name:ident, $ty:ty) => {
        pub struct $name;
        impl HasData for $name {
            type Data<'a> = &'a mut $ty;
        }
    };
}

capability_view!(RpcView, rpc::RpcState);
capability_view!(SqlView, sql::SqlState);
capability_view!(CryptoView, crypto::CryptoState);
capability_view!(ConfigView, config::host::ConfigState);
capability_view!(BrokerView, broker::host::BrokerState);
capability_view!(RegistryView, registry::RegistryState);
capability_view!(TelemetryView, telemetry::TelemetryState);

/// Adds the WASI base, `wasi:http` and every micro-api import to `linker`.
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    use crate::bindings::micro_api::host as wit;
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    wit::types::add_to_linker::<_, TelemetryView>(linker, |s| &mut s.telemetry)?;
    wit::rpc::add_to_linker::<_, RpcView>(linker, |s| &mut s.rpc)?;
    wit::sql::add_to_linker::<_, SqlView>(linker, |s| &mut s.sql)?;
    wit::crypto::add_to_linker::<_, CryptoView>(linker, |s| &mut s.crypto)?;
    wit::config::add_to_linker::<_, ConfigView>(linker, |s| &mut s.config)?;
    wit::broker::add_to_linker::<_, BrokerView>(linker, |s| &mut s.broker)?;
    wit::registry::add_to_linker::<_, RegistryView>(linker, |s| &mut s.registry)?;
    wit::log::add_to_linker::<_, TelemetryView>(linker, |s| &mut s.telemetry)?;
    wit::trace::add_to_linker::<_, TelemetryView>(linker, |s| &mut s.telemetry)?;
    Ok(())
}
