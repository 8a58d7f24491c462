//! What the micro-api host and its plugins must agree on, written once.
//!
//! The host (native) and the plugins (wasm, through `micro-api-sdk`, which re-exports this
//! crate as `micro_api_sdk::contracts`) both depend on it, so neither side can drift from
//! the other: a header renamed here is renamed on both sides, and the form the host's login
//! limiter counts is read by the very code the login plugin reads it with.
//!
//! - [`headers`]: the request headers the host sets for a plugin (verified claims, the
//!   client's address, route parameters) and the `Authorization: Bearer` rule;
//! - [`form`]: the `application/x-www-form-urlencoded` check and parser;
//! - [`services`]: the seed services' requests and answers;
//! - [`events`]: the events the seed plugins publish.
//!
//! ```
//! use micro_api_contracts::{form::Form, headers};
//!
//! assert_eq!(headers::bearer_token("Bearer abc"), Some("abc"));
//! assert_eq!(Form::parse(b"userName=micro").get("userName"), Some("micro"));
//! ```

pub mod events;
pub mod form;
pub mod headers;
pub mod services;
