//! The data of one instance's `Store`: the WASI base every plugin gets, plus one small
//! state per capability, each prepared from the plugin's grants (Spin's "prepare" step).
//!
//! Each capability's host functions see only their own piece, through the `StateOf` view
//! the capability list implements (as wasmtime's `WasiView` does for WASI). The WASI base
//! and `wasi:http` share one resource table, so they live here; outbound HTTP's policy is
//! the `outbound` capability's state, handed to `wasi:http` as its hooks.

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::capabilities::CapabilityStates;
use super::metrics::InstanceAlive;

pub struct PluginState {
    pub(super) wasi: WasiCtx,
    pub(super) http: WasiHttpCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: StoreLimits,
    pub capabilities: CapabilityStates,
    /// When the epoch interrupts the guest: the request's deadline (`None`: an instance
    /// serving several requests at once, which `reuse::Expiration` bounds instead).
    pub(super) deadline: Option<std::time::Instant>,
    pub(super) _alive: InstanceAlive,
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
            hooks: &mut self.capabilities.outbound,
        }
    }
}
