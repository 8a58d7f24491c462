//! Running one invocation: a fresh store and instance for an HTTP request or an rpc call,
//! bounded by its deadline. A trap, a timeout or a memory bomb ends that invocation alone;
//! the outcome is counted on the plugin and logged with its name.
//!
//! The guest runs in the caller's task (the request's, or the calling guest's): a task of
//! its own costs a spawn and a cross-thread wake-up per call, a measured 4-9% of the
//! throughput (issue 4). An rpc caller that gives up (its breaker's timeout, its own
//! deadline) drops the callee's future, and with it the store: the callee stops there. An
//! HTTP guest moves to a task of its own when it is still running as the response goes out
//! (it streams the body) or as its client disconnects ([`RunsToEnd`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::is_deadline_trap;
use super::state::{CallContext, PluginState};
use crate::app::App;
use crate::plugins::{Entry, Plugin, PluginStats};
use crate::rpc::CallError;
use crate::telemetry::metrics::{METRICS, Metrics};

/// Why an HTTP plugin produced no response.
#[derive(Debug, thiserror::Error)]
pub enum HttpInvokeError {
    #[error("the plugin ran past its deadline")]
    Timeout,
    #[error("the plugin trapped")]
    Trap,
    #[error("the plugin returned without a response")]
    NoResponse,
    #[error("{0} is not an HTTP plugin")]
    NotHttp(String),
}

/// How a guest call ended, from the host's side.
enum Ended {
    Timeout,
    Trap,
}

/// Classifies and logs a failed guest call.
fn ended(plugin: &Plugin, error: Option<wasmtime::Error>) -> Ended {
    PluginStats::count(&plugin.stats.errors);
    Metrics::plugin(&METRICS.errors, &plugin.name);
    match error {
        None => {
            Metrics::plugin(&METRICS.deadline_kills, &plugin.name);
            tracing::warn!(plugin = %plugin.name, version = %plugin.version, "plugin deadline exceeded");
            Ended::Timeout
        }
        Some(e) if is_deadline_trap(&e) => {
            Metrics::plugin(&METRICS.deadline_kills, &plugin.name);
            tracing::warn!(plugin = %plugin.name, version = %plugin.version, "plugin interrupted at its deadline");
            Ended::Timeout
        }
        Some(e) => {
            PluginStats::count(&plugin.stats.traps);
            Metrics::plugin(&METRICS.traps, &plugin.name);
            tracing::error!(plugin = %plugin.name, version = %plugin.version, error = %format!("{e:?}"), "plugin trapped");
            Ended::Trap
        }
    }
}

/// Calls `handle(method, payload)` of a service plugin.
pub async fn call_service(
    app: &Arc<App>,
    plugin: Arc<Plugin>,
    method: String,
    payload: Vec<u8>,
    call: CallContext,
) -> Result<Vec<u8>, CallError> {
    let Entry::Service(pre) = &plugin.entry else {
        return Err(CallError::Unavailable(format!(
            "{} is not a service",
            plugin.name
        )));
    };
    PluginStats::count(&plugin.stats.invocations);
    Metrics::plugin(&METRICS.invocations, &plugin.name);
    let pre = pre.clone();
    let deadline = call.deadline.min(Instant::now() + plugin.deadline());
    let mut store = app
        .runtime
        .new_store(PluginState::new(app, &plugin, call), deadline);
    let current_span = store.data().telemetry.current_span();
    let outcome = current_span
        .wrap(tokio::time::timeout_at(deadline.into(), async {
            let service = pre.instantiate_async(&mut store).await?;
            service
                .micro_api_host_handler()
                .call_handle(&mut store, &method, &payload)
                .await
        }))
        .await;
    let result = match outcome {
        Ok(Ok(Ok(answer))) => Ok(answer),
        Ok(Ok(Err(refusal))) => Err(CallError::from(refusal)),
        Ok(Err(trap)) => Err(failure(&plugin, Some(trap))),
        Err(_elapsed) => Err(failure(&plugin, None)),
    };
    // The callee's own refusals are answers; anything else is a failure of this version.
    let failed = matches!(&result, Err(e) if !e.is_app());
    app.record_outcome(&plugin, failed);
    result
}

fn failure(plugin: &Plugin, error: Option<wasmtime::Error>) -> CallError {
    match ended(plugin, error) {
        Ended::Timeout => CallError::Timeout,
        Ended::Trap => CallError::Unavailable(format!("{} failed", plugin.name)),
    }
}

/// Counts an invocation that starts a call chain (an HTTP request, a message) and makes
/// its store, due at the plugin's own deadline.
fn first_store(
    app: &Arc<App>,
    plugin: &Plugin,
    trace: crate::telemetry::TraceContext,
) -> (wasmtime::Store<PluginState>, Instant) {
    PluginStats::count(&plugin.stats.invocations);
    Metrics::plugin(&METRICS.invocations, &plugin.name);
    let deadline = Instant::now() + plugin.deadline();
    let call = CallContext {
        deadline,
        depth: 0,
        trace,
    };
    let store = app
        .runtime
        .new_store(PluginState::new(app, plugin, call), deadline);
    (store, deadline)
}

/// Why a subscriber did not take a message.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0} is not a subscriber")]
    NotSubscriber(String),
    #[error("the subscriber refused the message: {0}")]
    Refused(CallError),
    #[error("the subscriber ran past its deadline")]
    Timeout,
    #[error("the subscriber trapped")]
    Trap,
}

/// Calls `on-message(topic, payload)` of a subscriber plugin, within its deadline.
pub async fn deliver_message(
    app: &Arc<App>,
    plugin: Arc<Plugin>,
    topic: String,
    payload: bytes::Bytes,
) -> Result<(), DeliveryError> {
    let Entry::Subscriber(pre) = &plugin.entry else {
        return Err(DeliveryError::NotSubscriber(plugin.name.clone()));
    };
    let pre = pre.clone();
    let (mut store, deadline) =
        first_store(app, &plugin, crate::telemetry::TraceContext::new_root());
    let current_span = store.data().telemetry.current_span();
    let outcome = current_span
        .wrap(tokio::time::timeout_at(deadline.into(), async {
            let subscriber = pre.instantiate_async(&mut store).await?;
            subscriber
                .micro_api_host_message_handler()
                .call_on_message(&mut store, &topic, &payload)
                .await
        }))
        .await;
    let result = match outcome {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(refusal))) => {
            PluginStats::count(&plugin.stats.errors);
            Metrics::plugin(&METRICS.errors, &plugin.name);
            Err(DeliveryError::Refused(CallError::from(refusal)))
        }
        Ok(Err(trap)) => Err(delivery_failure(&plugin, Some(trap))),
        Err(_elapsed) => Err(delivery_failure(&plugin, None)),
    };
    app.record_outcome(&plugin, result.is_err());
    result
}

fn delivery_failure(plugin: &Plugin, error: Option<wasmtime::Error>) -> DeliveryError {
    match ended(plugin, error) {
        Ended::Timeout => DeliveryError::Timeout,
        Ended::Trap => DeliveryError::Trap,
    }
}

/// Hands `request` to an HTTP plugin and returns its response as soon as the plugin has
/// set it; the body then streams while the instance, moved to a task of its own, writes it.
pub async fn handle_http(
    app: &Arc<App>,
    plugin: Arc<Plugin>,
    request: http::Request<Full<Bytes>>,
    trace: crate::telemetry::TraceContext,
) -> Result<http::Response<HyperOutgoingBody>, HttpInvokeError> {
    let Entry::Http(pre) = &plugin.entry else {
        return Err(HttpInvokeError::NotHttp(plugin.name.clone()));
    };
    let pre = pre.clone();
    let (mut store, deadline) = first_store(app, &plugin, trace);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let setup = (|| -> wasmtime::Result<_> {
        let mut http = store.data_mut().http();
        let request = http.new_incoming_request(Scheme::Http, request)?;
        let out = http.new_response_outparam(sender)?;
        Ok((request, out))
    })();
    let (request, out) = setup.map_err(|e| {
        tracing::error!(plugin = %plugin.name, error = %e, "cannot hand the request to the plugin");
        HttpInvokeError::NoResponse
    })?;
    let task_plugin = plugin.clone();
    let current_span = store.data().telemetry.current_span();
    let guest = RunsToEnd(Some(current_span.wrap(async move {
        let outcome = tokio::time::timeout_at(deadline.into(), async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, out)
                .await
        })
        .await;
        match outcome {
            Ok(Ok(())) => None,
            Ok(Err(trap)) => Some(ended(&task_plugin, Some(trap))),
            Err(_elapsed) => Some(ended(&task_plugin, None)),
        }
    })));
    let result = answer(&plugin, receiver, guest).await;
    let failed = result
        .as_ref()
        .map_or(true, |response| response.status().is_server_error());
    app.record_outcome(&plugin, failed);
    result
}

/// The plugin's response, or why there is none: runs `guest` until it has set its
/// response (then hands the rest of it, the body, to a task of its own) or has ended.
async fn answer(
    plugin: &Plugin,
    mut receiver: tokio::sync::oneshot::Receiver<
        Result<
            http::Response<HyperOutgoingBody>,
            wasmtime_wasi_http::p2::bindings::http::types::ErrorCode,
        >,
    >,
    mut guest: RunsToEnd<impl Future<Output = Option<Ended>> + Unpin + Send + 'static>,
) -> Result<http::Response<HyperOutgoingBody>, HttpInvokeError> {
    let (set, ended) = tokio::select! {
        // A guest that sets its response and returns in the same poll counts as answered.
        biased;
        ended = &mut guest => (receiver.try_recv().ok(), Some(ended)),
        set = &mut receiver => match set {
            Ok(set) => (Some(set), None),
            // Dropped unset while still running: wait for the guest's end, to say how.
            Err(_) => (None, Some((&mut guest).await)),
        },
    };
    // A guest still writing the body the response streams from finishes on its own task.
    drop(guest);
    match (set, ended) {
        (Some(Ok(response)), _) => Ok(response),
        // The guest answered with an error code instead of a response.
        (Some(Err(code)), _) => {
            tracing::warn!(plugin = %plugin.name, error = ?code, "plugin answered with an error code");
            PluginStats::count(&plugin.stats.errors);
            Metrics::plugin(&METRICS.errors, &plugin.name);
            Err(HttpInvokeError::NoResponse)
        }
        // The outparam was dropped unset: the guest has ended, say how.
        (None, Some(Some(Ended::Timeout))) => Err(HttpInvokeError::Timeout),
        (None, Some(Some(Ended::Trap))) => Err(HttpInvokeError::Trap),
        (None, _) => Err(HttpInvokeError::NoResponse),
    }
}

/// A guest run that outlives its caller: dropped before its end (the response is out and
/// the body still streams, or the client went away), it moves to a task of its own and
/// runs to its end. So a client that disconnects never cuts a guest mid-way, nor the rpc
/// calls it has in flight, which their breakers would count as failures of the callees.
struct RunsToEnd<F>(Option<F>)
where
    F: Future + Unpin + Send + 'static,
    F::Output: Send + 'static;

impl<F> Future for RunsToEnd<F>
where
    F: Future + Unpin + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let run = self
            .0
            .as_mut()
            .expect("a guest run is not polled after its end");
        let output = std::task::ready!(Pin::new(run).poll(cx));
        self.0 = None;
        Poll::Ready(output)
    }
}

impl<F> Drop for RunsToEnd<F>
where
    F: Future + Unpin + Send + 'static,
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        // Outside a runtime (the process is exiting) there is nothing to finish on.
        if let Some(rest) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(rest);
        }
    }
}
