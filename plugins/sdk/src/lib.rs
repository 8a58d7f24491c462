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
//! [`Error`]; [`error`] builds them and maps them to HTTP answers. What the host and the
//! plugins must agree on (header names, the seed services' messages, events) is in
//! [`contracts`], typed helpers on top of it in [`services`] and [`http::Request`].
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
pub mod log;
pub mod rpc;
pub mod service;
pub mod services;
pub mod sql;

/// The `wasip2` crate, for the WASI interfaces (clocks, random, `wasi:http` types...).
pub use wasip2;

/// What the host and plugins agree on (`micro-api-contracts`): the headers the host sets,
/// the form and bearer-token rules, the seed services' messages and events.
///
/// ```
/// use micro_api_sdk::contracts::events::LoginEvent;
/// assert_eq!(LoginEvent::TOPIC, "user.login");
/// ```
pub use micro_api_contracts as contracts;

pub use error::Error;
pub use host::{config, crypto, registry, trace, types};

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

/// `wit_bindgen::generate!` for an exporting world of `wit/host.wit`: its imports are mapped
/// onto [`host`] (one list, here, for every world), so they are not generated twice and
/// only the world's export is new. As in `wasip2`, the custom section describing the
/// export is emitted by the export macro, so a plugin that never calls it (an http plugin)
/// does not claim to export it.
macro_rules! exporting_world {
    ($world:tt, $export_macro:tt, $module:tt) => {
        wit_bindgen::generate!({
            world: $world,
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
            export_macro_name: $export_macro,
            default_bindings_module: $module,
        });
    };
}

/// Bindings to the `service` world: only the `handler` export is new.
#[doc(hidden)]
pub mod __service {
    exporting_world!(
        "micro-api:host/service",
        "export_service",
        "$crate::__service"
    );
}

/// Bindings to the `subscriber` world: only the `message-handler` export is new.
#[doc(hidden)]
pub mod __subscriber {
    exporting_world!(
        "micro-api:host/subscriber",
        "export_subscriber",
        "$crate::__subscriber"
    );
}

/// Exports a type implementing [`broker::Subscriber`] as this component's
/// `message-handler`.
///
/// ```no_run
/// # use micro_api_sdk::{Error, broker};
/// struct MySubscriber;
///
/// impl broker::Subscriber for MySubscriber {
///     fn on_message(_topic: String, _payload: Vec<u8>) -> Result<(), Error> {
///         Ok(())
///     }
/// }
///
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
