//! The WIT `error` is the error of every host call and of rpc itself, on both sides of the
//! wire (serialized between nodes): one type, generated from `wit/host.wit`, with what the
//! host needs to know of it.

pub use crate::bindings::Error;

impl Error {
    /// The callee's own refusal: a completed call as far as the breaker is concerned.
    pub fn is_app(&self) -> bool {
        matches!(self, Error::App(_))
    }
}

/// How a call ended, as spans and metrics name it.
pub fn outcome_name<T>(result: &Result<T, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(Error::App(_)) => "app_error",
        Err(Error::Timeout) => "timeout",
        Err(Error::CircuitOpen) => "circuit_open",
        Err(Error::Rejected) => "rejected",
        Err(Error::Unavailable(_)) => "unavailable",
        Err(Error::Forbidden(_)) => "forbidden",
        Err(Error::Invalid(_)) => "invalid",
    }
}
