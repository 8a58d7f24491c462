//! The front doors. [`serve`] accepts connections (HTTP/1.1 and HTTP/2) on one listener
//! and holds them to the limits it is given ([`conn`], [`budget`]); the public listener's
//! handler is the [`Gateway`], which routes each request ([`router`]) to its HTTP plugin
//! through a few steps (the route's token check [`auth`], the body streamed within its
//! limits [`request_body`], the login limiter [`login_limit`], the load shedder [`shed`]) and turns every failure into the
//! gateway's JSON error shape ([`error`]). Every refusal is counted in [`metrics`]; with
//! the access log on, every request writes one line ([`access_log`]).

mod access_log;
pub mod auth;
mod budget;
mod config;
mod conn;
pub mod error;
mod gateway;
pub mod login_limit;
pub mod metrics;
mod request_body;
pub mod router;
mod serve;
mod shed;
mod stop;

use std::net::SocketAddr;

pub use budget::{BodyBudget, BodyBytes};
pub use config::{FrontConfig, MIN_HEADER_BYTES};
pub use gateway::{Gateway, GatewayConfig};
pub use metrics::FrontMetrics;
pub use serve::serve;
pub use shed::ShedSettings;
pub use stop::{StopSignal, Stopper};

/// The client's address, in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The client's certificate, verified in the TLS handshake, in the extensions of every
/// request on a TLS listener that asks for one (the rpc listener with `[cluster.tls]`).
#[derive(Debug, Clone)]
pub struct TlsPeer(pub std::sync::Arc<rustls::pki_types::CertificateDer<'static>>);
