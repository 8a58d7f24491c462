//! The seed services' requests and answers (from [`contracts::services`]), and [`Call`],
//! which sends any of them through [`rpc`].
//!
//! A caller writes `user::CheckPassword { .. }.call()?`; the service matches
//! `user::CheckPassword::METHOD` in its [`Guest::handle`](crate::service::Guest::handle).
//! A service of your own gets the same: implement [`Rpc`] for its request types.
//!
//! [`contracts::services`]: crate::contracts::services

use crate::{Error, rpc};

pub use crate::contracts::services::{Rpc, auth, user};

/// Sends a request through [`rpc::call_json`] to its service and method and decodes the
/// answer: implemented for every [`Rpc`].
///
/// ```no_run
/// # fn f() -> Result<(), micro_api_sdk::Error> {
/// use micro_api_sdk::services::{Call as _, user::GetUserByName};
///
/// let user = GetUserByName { name: "micro".into() }.call()?;
/// assert_eq!(user.id, 10001);
/// # Ok(()) }
/// ```
pub trait Call: Rpc {
    /// Sends this request and waits for its answer, through the breaker
    /// `SERVICE.METHOD`.
    fn call(&self) -> Result<Self::Answer, Error> {
        rpc::call_json(Self::SERVICE, Self::METHOD, self)
    }
}

impl<T: Rpc> Call for T {}
