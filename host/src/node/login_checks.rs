//! `[cluster] login_checks`: password checks that other nodes ask for on the rpc listener
//! (`user.CheckPassword`) are counted by the host's login limiter, the one the front's
//! login route counts in, so that holding the cluster secret is no way around the limit.
//!
//! A check is counted against its user name only (`[login_limit] max_failures_per_user`),
//! never against the caller's address: that is a node's, shared by every login through it
//! (see [`LoginLimiter::begin_remote`]). Its answer decides how it counts: the method's
//! own refusal `app(unauthorized)` (what the seed's `user` service answers for a wrong
//! password or an unknown name) is a failure, a result is a success (clearing the name's
//! failures), anything else leaves the count as it was.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;

use crate::bindings::AppError;
use crate::front::login_limit::{Attempt, LoginLimiter, Outcome};
use crate::rpc::Error;

/// The methods that check passwords, and the limiter that counts them.
pub struct LoginChecks {
    /// `None` when `[login_limit]` is off: nothing is counted.
    limiter: Option<Arc<LoginLimiter>>,
    /// `(service, method, field holding the user name)`.
    methods: Vec<(String, String, String)>,
}

/// A check refused before it runs: the status and the rpc error to answer.
pub type Refusal = (StatusCode, Error);

impl LoginChecks {
    pub fn new(limiter: Option<Arc<LoginLimiter>>, methods: &BTreeMap<String, String>) -> Self {
        let methods = methods
            .iter()
            .filter_map(|(name, field)| {
                let (service, method) = name.split_once('.')?;
                Some((service.into(), method.into(), field.clone()))
            })
            .collect();
        Self { limiter, methods }
    }

    /// For a password check, lets it through (to be finished with its answer) or refuses
    /// it: its name is over the limit (429), or cannot be counted as the front would
    /// count it (400). `None` for any other call, and for a payload without the name as a
    /// string (the method refuses it unread).
    pub fn begin(
        &self,
        service: &str,
        method: &str,
        payload: &[u8],
    ) -> Result<Option<Attempt<'_>>, Refusal> {
        let Some(limiter) = &self.limiter else {
            return Ok(None);
        };
        let Some((_, _, field)) = self
            .methods
            .iter()
            .find(|(s, m, _)| s == service && m == method)
        else {
            return Ok(None);
        };
        let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(payload) else {
            return Ok(None);
        };
        let Some(serde_json::Value::String(name)) = fields.get(field.as_str()) else {
            return Ok(None);
        };
        limiter.countable(name).map_err(|unreadable| {
            (
                StatusCode::BAD_REQUEST,
                Error::Invalid(unreadable.to_string()),
            )
        })?;
        limiter
            .begin_remote(name.clone())
            .map(Some)
            .map_err(|throttled| {
                let refusal = Error::App(AppError {
                    code: "too_many_requests".into(),
                    message: throttled.to_string(),
                });
                (StatusCode::TOO_MANY_REQUESTS, refusal)
            })
    }
}

/// How a password check's answer counts.
pub fn outcome(result: &Result<Vec<u8>, Error>) -> Outcome {
    match result {
        Ok(_) => Outcome::Succeeded,
        Err(Error::App(refusal)) if refusal.code == "unauthorized" => Outcome::Failed,
        Err(_) => Outcome::Other,
    }
}
