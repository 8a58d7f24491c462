//! Host bindings of `wit/host.wit`, generated once for every capability module.
//!
//! Every import is async: the ones that wait (rpc, sql, crypto's argon2 on the blocking
//! pool) must be, and one flavour keeps the linker uniform. The generated types are the
//! host's own (`sql::Value`, the `error` variant): serde lets an rpc error cross the wire
//! between nodes as it is.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "micro-api:host/service",
    imports: { default: async },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

pub use self::micro_api::host::types::{AppError, Error};

/// The `subscriber` world's export (`message-handler`), its imports mapped onto the
/// bindings above so each host function has one implementation.
pub mod subscriber {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "micro-api:host/subscriber",
        imports: { default: async },
        exports: { default: async },
        with: {
            "micro-api:host/types": super::micro_api::host::types,
            "micro-api:host/registry": super::micro_api::host::registry,
            "micro-api:host/rpc": super::micro_api::host::rpc,
            "micro-api:host/sql": super::micro_api::host::sql,
            "micro-api:host/config": super::micro_api::host::config,
            "micro-api:host/crypto": super::micro_api::host::crypto,
            "micro-api:host/broker": super::micro_api::host::broker,
            "micro-api:host/log": super::micro_api::host::log,
            "micro-api:host/trace": super::micro_api::host::trace,
        },
    });
}

pub use subscriber::SubscriberPre;
