//! Location-transparent calls `service.method(payload)`, each through the circuit breaker
//! of its command.
//!
//! A call checks the caller's grant, resolves the service through the registry, and runs
//! the callee in its own store. The deadline travels: the callee gets what
//! is left of the caller's budget (capped by the breaker's timeout), never a fresh one, and
//! a depth limit makes call cycles (A -> B -> A) fail fast.

pub mod breaker;
mod host;
pub mod listener;
pub mod remote;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use breaker::{Breaker, BreakerStatus};

use crate::app::App;
use crate::bindings;
use crate::config::Config;
use crate::plugins::Plugin;
use crate::runtime::state::CallContext;
use crate::telemetry::metrics::{METRICS, RpcLabels};
use tracing::Instrument;

/// How many nested rpc hops one request may make.
pub const MAX_CALL_DEPTH: u32 = 8;

/// Why an rpc (or a host call) failed; mirrors the WIT `error` variant. Serialized as JSON
/// between nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum CallError {
    #[error("deadline exceeded")]
    Timeout,
    #[error("circuit open")]
    CircuitOpen,
    #[error("too many concurrent calls")]
    Rejected,
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("{code}: {message}")]
    App { code: String, message: String },
}

impl CallError {
    /// The callee's own refusal: a completed call as far as the breaker is concerned.
    pub fn is_app(&self) -> bool {
        matches!(self, CallError::App { .. })
    }
}

impl From<CallError> for bindings::Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Timeout => Self::Timeout,
            CallError::CircuitOpen => Self::CircuitOpen,
            CallError::Rejected => Self::Rejected,
            CallError::Unavailable(m) => Self::Unavailable(m),
            CallError::Forbidden(m) => Self::Forbidden(m),
            CallError::Invalid(m) => Self::Invalid(m),
            CallError::App { code, message } => Self::App(bindings::AppError { code, message }),
        }
    }
}

impl From<bindings::Error> for CallError {
    fn from(e: bindings::Error) -> Self {
        match e {
            bindings::Error::Timeout => Self::Timeout,
            bindings::Error::CircuitOpen => Self::CircuitOpen,
            bindings::Error::Rejected => Self::Rejected,
            bindings::Error::Unavailable(m) => Self::Unavailable(m),
            bindings::Error::Forbidden(m) => Self::Forbidden(m),
            bindings::Error::Invalid(m) => Self::Invalid(m),
            bindings::Error::App(a) => Self::App {
                code: a.code,
                message: a.message,
            },
        }
    }
}

/// The breakers of every command called so far, created on first use from the config.
pub struct Breakers {
    config: Arc<Config>,
    by_command: Mutex<HashMap<String, Arc<Breaker>>>,
}

impl Breakers {
    pub fn new(config: Arc<Config>) -> Self {
        Self {
            config,
            by_command: Mutex::default(),
        }
    }

    pub fn get(&self, command: &str) -> Arc<Breaker> {
        let mut map = self.by_command.lock().expect("breakers lock");
        map.entry(command.to_string())
            .or_insert_with(|| {
                METRICS.breaker_created(command);
                Arc::new(Breaker::new(command, self.config.breaker_settings(command)))
            })
            .clone()
    }

    pub fn statuses(&self) -> Vec<BreakerStatus> {
        let map = self.by_command.lock().expect("breakers lock");
        let mut all: Vec<_> = map.values().map(|b| b.status()).collect();
        all.sort_by(|a, b| a.command.cmp(&b.command));
        all
    }
}

/// Per-instance state of the `rpc` import.
pub struct RpcState {
    app: Arc<App>,
    caller: String,
    granted: Vec<String>,
    call: CallContext,
}

impl RpcState {
    pub fn prepare(app: &Arc<App>, plugin: &Plugin, call: CallContext) -> Self {
        Self {
            app: app.clone(),
            caller: plugin.name.clone(),
            granted: plugin.grants.rpc.clone(),
            call,
        }
    }

    /// Calls `service.method` through its breaker, in a client span that the callee's
    /// invocation (here or on another node) is a child of.
    pub async fn call(
        &self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        let span = tracing::info_span!(
            "rpc.client",
            otel.kind = "client",
            otel.name = tracing::field::Empty,
            rpc.system = "micro-api",
            rpc.service = service,
            rpc.method = method,
            micro_api.breaker.outcome = tracing::field::Empty,
        );
        if crate::telemetry::exporting() {
            span.record("otel.name", format!("{service}/{method}"));
        }
        let result = self
            .call_through_breaker(service, method, payload, &span)
            .instrument(span.clone())
            .await;
        let outcome = outcome_name(&result);
        span.record("micro_api.breaker.outcome", outcome);
        METRICS
            .rpc_calls
            .get_or_create(&RpcLabels {
                service: service.to_string(),
                method: method.to_string(),
                outcome,
            })
            .inc();
        result
    }

    async fn call_through_breaker(
        &self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        span: &tracing::Span,
    ) -> Result<Vec<u8>, CallError> {
        if !self.granted.iter().any(|s| s == service) {
            return Err(CallError::Forbidden(format!(
                "{} is not granted rpc to {service}",
                self.caller
            )));
        }
        if self.call.depth >= MAX_CALL_DEPTH {
            return Err(CallError::Unavailable(format!(
                "call depth limit ({MAX_CALL_DEPTH}) reached: is there a call cycle?"
            )));
        }
        let now = Instant::now();
        let remaining = self.call.deadline.saturating_duration_since(now);
        if remaining.is_zero() {
            return Err(CallError::Timeout);
        }
        let breaker = self.app.breakers.get(&format!("{service}.{method}"));
        let timeout = breaker.timeout().min(remaining);
        let permit = breaker.try_acquire().map_err(|refusal| match refusal {
            breaker::Refusal::CircuitOpen => CallError::CircuitOpen,
            breaker::Refusal::Rejected => CallError::Rejected,
        })?;
        let callee = CallContext {
            deadline: now + timeout,
            depth: self.call.depth + 1,
            trace: self.call.trace.outgoing(span),
        };
        let result = tokio::time::timeout(timeout, self.app.call(service, method, payload, callee))
            .await
            .unwrap_or(Err(CallError::Timeout));
        permit.complete(match &result {
            Ok(_) => breaker::Outcome::Success,
            Err(e) if e.is_app() => breaker::Outcome::Success,
            Err(CallError::Timeout) => breaker::Outcome::Timeout,
            Err(_) => breaker::Outcome::Failure,
        });
        result
    }
}

/// How a call ended, as spans and metrics name it.
fn outcome_name(result: &Result<Vec<u8>, CallError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(CallError::App { .. }) => "app_error",
        Err(CallError::Timeout) => "timeout",
        Err(CallError::CircuitOpen) => "circuit_open",
        Err(CallError::Rejected) => "rejected",
        Err(CallError::Unavailable(_)) => "unavailable",
        Err(CallError::Forbidden(_)) => "forbidden",
        Err(CallError::Invalid(_)) => "invalid",
    }
}
