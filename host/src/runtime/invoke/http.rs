//! An HTTP request handed to an HTTP plugin: on a fresh instance (a WASI 0.2
//! `wasi:http/incoming-handler` without reuse), whose response goes out as soon as the
//! guest sets it while the guest goes on writing its body, or on a reused one (`reused.rs`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use wasmtime_wasi_http::handler::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

use super::{Ended, ended};
use crate::capability::CallContext;
use crate::runtime::metrics::Event;
use crate::runtime::plugin::Entry;
use crate::runtime::{Plugin, PluginState, Runtime};
use crate::telemetry::TraceContext;

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
    #[error("no instance of the plugin could be made")]
    Unavailable,
}

/// Hands `request` to an HTTP plugin and returns its response as soon as the plugin has
/// set it; the body then streams while the instance, moved to a task of its own, writes it.
pub async fn handle_http(
    runtime: &Arc<Runtime>,
    plugin: &Arc<Plugin>,
    request: http::Request<WasiBody>,
    trace: TraceContext,
) -> Result<http::Response<HyperOutgoingBody>, HttpInvokeError> {
    let Entry::Http(pre) = &plugin.entry else {
        return Err(HttpInvokeError::NotHttp(plugin.name.to_string()));
    };
    match (pre, &plugin.reused) {
        (ProxyPre::P2(pre), _) if plugin.configured().reuse.is_none() => {
            on_fresh_instance(runtime, plugin, pre.clone(), request, trace).await
        }
        (_, Some(reused)) => super::reused::handle(plugin, reused, request, trace).await,
        (_, None) => Err(HttpInvokeError::NotHttp(plugin.name.to_string())),
    }
}

async fn on_fresh_instance(
    runtime: &Arc<Runtime>,
    plugin: &Arc<Plugin>,
    pre: wasmtime_wasi_http::p2::bindings::ProxyPre<PluginState>,
    request: http::Request<WasiBody>,
    trace: TraceContext,
) -> Result<http::Response<HyperOutgoingBody>, HttpInvokeError> {
    plugin.counters.count(Event::Invoked);
    let deadline = Instant::now() + plugin.deadline();
    let call = CallContext {
        deadline,
        depth: 0,
        trace,
    };
    let mut store = runtime.new_store(plugin, call);
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
    let task_runtime = runtime.clone();
    let current_span = store.data().capabilities.telemetry.current_span();
    let guest = RunsToEnd(Some(current_span.wrap(async move {
        let outcome = tokio::time::timeout_at(deadline.into(), async {
            let proxy = with_pool_room!(task_runtime, pre.instantiate_async(&mut store))?;
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
    answer(plugin, receiver, guest).await
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
            plugin.counters.count(Event::Failed);
            Err(HttpInvokeError::NoResponse)
        }
        // The outparam was dropped unset: the guest has ended, say how.
        (None, Some(Some(Ended::Timeout))) => Err(HttpInvokeError::Timeout),
        (None, Some(Some(Ended::Trap))) => Err(HttpInvokeError::Trap),
        (None, Some(Some(Ended::NoRoom))) => Err(HttpInvokeError::Unavailable),
        // Ended without a trap and without a response: a bug of the plugin's, said as such.
        (None, _) => {
            tracing::warn!(plugin = %plugin.name, version = %plugin.version, "plugin returned without setting a response");
            plugin.counters.count(Event::Failed);
            plugin.counters.count(Event::NoResponse);
            Err(HttpInvokeError::NoResponse)
        }
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
