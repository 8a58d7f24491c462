//! Write micro-api plugins in Rust.
//!
//! A plugin is a WebAssembly component of one of the three worlds of `wit/host.wit`:
//!
//! - a **service**, called by name through [`rpc`]: implement [`service::Guest`] and export
//!   it with [`export_service!`]; [`service::json`] turns a method into a typed function;
//! - an **http** handler, reached through a route: implement [`http::Handler`] and export it
//!   with [`export_http!`] (which uses the standard `wasi:http/incoming-handler`);
//! - a **subscriber**, handed the messages of its topics: implement [`broker::Subscriber`]
//!   and export it with [`export_subscriber!`].
//!
//! All worlds import the same host capabilities, bound once here: [`rpc`], [`sql`],
//! [`config`], [`crypto`], [`broker`], [`log`], [`trace`] and [`registry`]. Errors are the WIT
//! [`Error`]; [`error`] builds them and maps them to HTTP answers.
//!
//! ```no_run
//! use micro_api_sdk::{service, Error};
//!
//! struct Echo;
//!
//! impl service::Guest for Echo {
//!     fn handle(method: String, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
//!         match method.as_str() {
//!             "echo" => Ok(payload),
//!             other => Err(service::unknown_method(other)),
//!         }
//!     }
//! }
//!
//! micro_api_sdk::export_service!(Echo);
//! ```

pub mod broker;
pub mod error;
pub mod http;
pub mod rpc;
pub mod service;
pub mod services;
pub mod sql;

/// The `wasip2` crate, for the WASI interfaces (clocks, random, `wasi:http` types...).
pub use wasip2;

pub use error::Error;
pub use host::{config, crypto, log, registry, trace, types};

/// The host's imports as generated from `wit/host.wit`, without helpers.
pub mod host {
    pub use crate::bindings::micro_api::host::*;
}

/// Bindings to the `imports` world: every host import, generated once. Its custom section
/// (the component type of the imports) is linked as soon as a plugin uses an import.
mod bindings {
    wit_bindgen::generate!({
        world: "micro-api:host/imports",
        path: "../../wit",
    });
}

/// Bindings to the `service` world. The imports are mapped onto [`host`] so they are not
/// generated twice; only the `handler` export is new. As in `wasip2`, the custom section
/// describing the export is emitted by the [`export_service!`] macro, so http plugins (which
/// never call it) do not claim to export `handler`.
#[doc(hidden)]
pub mod __service {
    wit_bindgen::generate!({
        world: "micro-api:host/service",
        path: "../../wit",
        with: {
            "micro-api:host/types@0.1.0": crate::host::types,
            "micro-api:host/registry@0.1.0": crate::host::registry,
            "micro-api:host/rpc@0.1.0": crate::host::rpc,
            "micro-api:host/sql@0.1.0": crate::host::sql,
            "micro-api:host/config@0.1.0": crate::host::config,
            "micro-api:host/crypto@0.1.0": crate::host::crypto,
            "micro-api:host/broker@0.1.0": crate::host::broker,
            "micro-api:host/log@0.1.0": crate::host::log,
            "micro-api:host/trace@0.1.0": crate::host::trace,
        },
        pub_export_macro: true,
        export_macro_name: "export_service",
        default_bindings_module: "$crate::__service",
    });
}

/// Bindings to the `subscriber` world, made like [`__service`]: only the `message-handler`
/// export is new.
#[doc(hidden)]
pub mod __subscriber {
    wit_bindgen::generate!({
        world: "micro-api:host/subscriber",
        path: "../../wit",
        with: {
            "micro-api:host/types@0.1.0": crate::host::types,
            "micro-api:host/registry@0.1.0": crate::host::registry,
            "micro-api:host/rpc@0.1.0": crate::host::rpc,
            "micro-api:host/sql@0.1.0": crate::host::sql,
            "micro-api:host/config@0.1.0": crate::host::config,
            "micro-api:host/crypto@0.1.0": crate::host::crypto,
            "micro-api:host/broker@0.1.0": crate::host::broker,
            "micro-api:host/log@0.1.0": crate::host::log,
            "micro-api:host/trace@0.1.0": crate::host::trace,
        },
        pub_export_macro: true,
        export_macro_name: "export_subscriber",
        default_bindings_module: "$crate::__subscriber",
    });
}

/// Exports a type implementing [`broker::Subscriber`] as this component's
/// `message-handler`.
///
/// ```ignore
/// micro_api_sdk::export_subscriber!(MySubscriber);
/// ```
#[doc(inline)]
pub use __subscriber::export_subscriber;

/// Exports a type implementing [`service::Guest`] as this component's `handler`.
///
/// ```no_run
/// # use micro_api_sdk::{Error, service};
/// struct MyService;
///
/// impl service::Guest for MyService {
///     fn handle(method: String, _payload: Vec<u8>) -> Result<Vec<u8>, Error> {
///         Err(service::unknown_method(&method))
///     }
/// }
///
/// micro_api_sdk::export_service!(MyService);
/// ```
#[doc(inline)]
pub use __service::export_service;
