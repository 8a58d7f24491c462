//! Running one invocation: a fresh store and instance for an HTTP request or an rpc call,
//! on its own task, bounded by its deadline. A trap, a timeout or a memory bomb ends that
//! invocation alone; the outcome is counted on the plugin and logged with its name.

use std::sync::Arc;
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
    match error {
        None => {
            tracing::warn!(plugin = %plugin.name, version = %plugin.version, "plugin deadline exceeded");
            Ended::Timeout
        }
        Some(e) if is_deadline_trap(&e) => {
            tracing::warn!(plugin = %plugin.name, version = %plugin.version, "plugin interrupted at its deadline");
            Ended::Timeout
        }
        Some(e) => {
            PluginStats::count(&plugin.stats.traps);
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
    let pre = pre.clone();
    let deadline = call.deadline.min(Instant::now() + plugin.deadline());
    let mut store = app
        .runtime
        .new_store(PluginState::new(app, &plugin, call), deadline);
    let task = tokio::spawn(async move {
        tokio::time::timeout_at(deadline.into(), async {
            let service = pre.instantiate_async(&mut store).await?;
            service
                .micro_api_host_handler()
                .call_handle(&mut store, &method, &payload)
                .await
        })
        .await
    });
    let outcome = task
        .await
        .map_err(|e| CallError::Unavailable(format!("{} failed: {e}", plugin.name)))?;
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
    let outcome = tokio::time::timeout_at(deadline.into(), async {
        let subscriber = pre.instantiate_async(&mut store).await?;
        subscriber
            .micro_api_host_message_handler()
            .call_on_message(&mut store, &topic, &payload)
            .await
    })
    .await;
    let result = match outcome {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(refusal))) => {
            PluginStats::count(&plugin.stats.errors);
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
/// set it; the body then streams while the instance (on its own task) writes it.
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
    let task = tokio::spawn(async move {
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
    });
    let result = answer(&plugin, receiver, task).await;
    let failed = result
        .as_ref()
        .map_or(true, |response| response.status().is_server_error());
    app.record_outcome(&plugin, failed);
    result
}

/// The plugin's response, or why there is none.
async fn answer(
    plugin: &Plugin,
    receiver: tokio::sync::oneshot::Receiver<
        Result<
            http::Response<HyperOutgoingBody>,
            wasmtime_wasi_http::p2::bindings::http::types::ErrorCode,
        >,
    >,
    task: tokio::task::JoinHandle<Option<Ended>>,
) -> Result<http::Response<HyperOutgoingBody>, HttpInvokeError> {
    match receiver.await {
        Ok(Ok(response)) => Ok(response),
        // The guest answered with an error code instead of a response.
        Ok(Err(code)) => {
            tracing::warn!(plugin = %plugin.name, error = ?code, "plugin answered with an error code");
            PluginStats::count(&plugin.stats.errors);
            Err(HttpInvokeError::NoResponse)
        }
        // The outparam was dropped unset: the task has ended, say how.
        Err(_) => match task.await {
            Ok(Some(Ended::Timeout)) => Err(HttpInvokeError::Timeout),
            Ok(Some(Ended::Trap)) | Err(_) => Err(HttpInvokeError::Trap),
            Ok(None) => Err(HttpInvokeError::NoResponse),
        },
    }
}
