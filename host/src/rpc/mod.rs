//! Location-transparent calls `service.method(payload)` as a capability, each through the
//! circuit breaker of its command.
//!
//! A call checks the caller's grant (`rpc = ["user"]`), then the depth and what is left of
//! the deadline, then goes through the breaker to a [`Transport`] that runs the callee
//! where it is served (in this process or on another node: the host decides). The deadline
//! travels: the callee gets what is left of the caller's budget, capped by the breaker's
//! timeout, never a fresh one, and a depth limit makes call cycles (A -> B -> A) fail fast.

mod error;
mod host;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tracing::Instrument;
use wasmtime::component::{HasSelf, Linker};

pub use error::{Error, outcome_name};

use crate::breaker::{Breakers, Outcome, Refusal};
use crate::capability::{
    CallContext, Capability, InitError, Invocation, NoSection, PluginSpec, Shared, StateOf,
};

/// How many nested rpc hops one request may make.
pub const MAX_CALL_DEPTH: u32 = 8;

/// Runs `service.method` where it is served; the capability has already applied the grant
/// check, the depth limit and the breaker.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    async fn call(
        &self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        call: CallContext,
    ) -> Result<Vec<u8>, Error>;
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    service: String,
    method: String,
    /// See [`outcome_name`].
    outcome: &'static str,
}

struct RpcInner {
    transport: OnceLock<Arc<dyn Transport>>,
    breakers: Arc<Breakers>,
    calls: Family<RpcLabels, Counter>,
}

/// The capability: the breakers, and the transport the host binds once it is built.
#[derive(Clone)]
pub struct Rpc(Arc<RpcInner>);

impl Rpc {
    /// Where calls go from now on (set once, by the host, after the runtime exists).
    pub fn bind(&self, transport: Arc<dyn Transport>) {
        if self.0.transport.set(transport).is_err() {
            tracing::error!("the rpc transport was bound twice; keeping the first");
        }
    }
}

/// What one plugin may call.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcGrant {
    /// Services it may call.
    rpc: Arc<[String]>,
}

/// Per-instance state of the `rpc` import.
pub struct RpcState {
    rpc: Rpc,
    caller: Arc<str>,
    granted: Arc<[String]>,
    call: CallContext,
}

impl Capability for Rpc {
    const NAME: &'static str = "rpc";
    const GRANT_KEYS: &'static [&'static str] = &["rpc"];
    type Config = NoSection;
    type Grant = RpcGrant;
    type State = RpcState;

    async fn init(_: &NoSection, shared: &mut Shared<'_>) -> Result<Self, InitError> {
        let calls = Family::default();
        shared.metrics.register(
            "rpc_calls",
            "rpc calls made by components, by outcome",
            calls.clone(),
        );
        Ok(Self(Arc::new(RpcInner {
            transport: OnceLock::new(),
            breakers: shared.breakers.clone(),
            calls,
        })))
    }

    fn link<T: StateOf<RpcState>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        use crate::bindings::micro_api::host::rpc;
        rpc::add_to_linker::<T, HasSelf<RpcState>>(linker, T::state)
    }

    fn configure(_: &NoSection, plugin: &PluginSpec<'_>) -> Result<RpcGrant, Vec<String>> {
        let grant: RpcGrant = plugin.grant(Self::GRANT_KEYS)?;
        let fix = "list the services it may call: `rpc = [\"user\"]`";
        plugin.require("micro-api:host/rpc", !grant.rpc.is_empty(), fix)?;
        Ok(grant)
    }

    fn prepare(&self, grant: &RpcGrant, invocation: &Invocation<'_>) -> RpcState {
        RpcState {
            rpc: self.clone(),
            caller: invocation.plugin.clone(),
            granted: grant.rpc.clone(),
            call: invocation.call,
        }
    }
}

impl RpcGrant {
    /// The services this grant lets a plugin call (readiness waits for them).
    pub fn services(&self) -> &[String] {
        &self.rpc
    }
}

impl RpcState {
    /// Calls `service.method` through its breaker, in a client span that the callee's
    /// invocation (here or on another node) is a child of.
    pub async fn call(
        &self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
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
        self.rpc
            .0
            .calls
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
    ) -> Result<Vec<u8>, Error> {
        if !self.granted.iter().any(|s| s == service) {
            return Err(Error::Forbidden(format!(
                "{} is not granted rpc to {service}",
                self.caller
            )));
        }
        if self.call.depth >= MAX_CALL_DEPTH {
            return Err(Error::Unavailable(format!(
                "call depth limit ({MAX_CALL_DEPTH}) reached: is there a call cycle?"
            )));
        }
        let now = Instant::now();
        let remaining = self.call.deadline.saturating_duration_since(now);
        if remaining.is_zero() {
            return Err(Error::Timeout);
        }
        let Some(transport) = self.rpc.0.transport.get() else {
            return Err(Error::Unavailable("rpc is not ready yet".into()));
        };
        let breaker = self.rpc.0.breakers.get(&format!("{service}.{method}"));
        let timeout = breaker.timeout().min(remaining);
        let callee = CallContext {
            deadline: now + timeout,
            depth: self.call.depth + 1,
            trace: self.call.trace.outgoing(span),
        };
        let called = breaker
            .call(
                timeout,
                transport.call(service, method, payload, callee),
                |result| match result {
                    Ok(_) => Outcome::Success,
                    Err(e) if e.is_app() => Outcome::Success,
                    Err(Error::Timeout) => Outcome::Timeout,
                    Err(_) => Outcome::Failure,
                },
            )
            .await;
        match called {
            Ok(result) => result,
            Err(Refusal::CircuitOpen) => Err(Error::CircuitOpen),
            Err(Refusal::Rejected) => Err(Error::Rejected),
            Err(Refusal::Timeout) => Err(Error::Timeout),
        }
    }
}
