//! Host bindings of `wit/host.wit`, generated once for every capability module.
//!
//! Every import is async: the ones that wait (rpc, sql, crypto's argon2 on the blocking
//! pool) must be, and one flavour keeps the linker uniform.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "micro-api:host/service",
    imports: { default: async },
    exports: { default: async },
});

pub use self::micro_api::host::types::{AppError, Error};
