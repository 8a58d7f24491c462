//! Calls to other services, raw ([`call`]) or typed ([`call_json`]).

pub use crate::host::rpc::*;

use serde::{Serialize, de::DeserializeOwned};

use crate::error;

/// Calls `service.method` with `request` encoded as JSON and decodes the JSON answer.
///
/// Errors of the call come back unchanged; an answer that is not the expected JSON is
/// `unavailable` (the callee broke the contract).
///
/// ```no_run
/// # use micro_api_sdk::{Error, rpc};
/// # fn f() -> Result<(), Error> {
/// #[derive(serde::Deserialize)]
/// struct User { id: u64, name: String }
///
/// let user: User = rpc::call_json("user", "GetUserByName", &serde_json::json!({"name": "micro"}))?;
/// # Ok(()) }
/// ```
pub fn call_json<Req, Resp>(service: &str, method: &str, request: &Req) -> Result<Resp, Error>
where
    Req: Serialize + ?Sized,
    Resp: DeserializeOwned,
{
    let payload = serde_json::to_vec(request).map_err(|e| {
        error::invalid(format!(
            "cannot encode the request to {service}.{method}: {e}"
        ))
    })?;
    let answer = call(service, method, &payload)?;
    serde_json::from_slice(&answer)
        .map_err(|e| error::unavailable(format!("bad answer from {service}.{method}: {e}")))
}
