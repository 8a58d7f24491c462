//! The HTTP front on 127.0.0.1:8080: accept connections (HTTP/1.1 and HTTP/2), route each
//! request to its plugin, enforce the body limit, and turn every failure into the gateway's
//! JSON error shape.

pub mod error;
pub mod router;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tracing::Instrument;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::app::App;
use crate::runtime::invoke::{self, HttpInvokeError};
use router::{Routed, Router};

/// Serves `listener` with `handler` until `shutdown` resolves, then stops accepting and
/// waits for the connections in flight to finish their requests.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<HyperOutgoingBody>> + Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = hyper::service::service_fn(move |request| {
            let response = handler(request);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// The gateway's request handler: route, limit, invoke.
#[derive(Clone)]
pub struct Gateway {
    app: Arc<App>,
    router: Arc<Router>,
}

impl Gateway {
    pub fn new(app: Arc<App>) -> Self {
        let router = Arc::new(Router::new(&app.config.route));
        Self { app, router }
    }

    pub async fn handle(self, request: Request<Incoming>) -> Response<HyperOutgoingBody> {
        let span = tracing::info_span!(
            "http.request",
            otel.kind = "server",
            http.request.method = %request.method(),
            url.path = %request.uri().path(),
            plugin = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
        );
        let response = self.route(request).instrument(span.clone()).await;
        span.record("http.response.status_code", response.status().as_u16());
        response
    }

    async fn route(&self, request: Request<Incoming>) -> Response<HyperOutgoingBody> {
        let name = match self.router.route(request.method(), request.uri().path()) {
            Routed::Plugin(name) => name,
            Routed::NotFound => return error::not_found(),
            Routed::MethodNotAllowed(allowed) => {
                let mut response = error::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "this method is not allowed on this path",
                );
                let allow = allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Ok(value) = HeaderValue::from_str(&allow) {
                    response.headers_mut().insert(header::ALLOW, value);
                }
                return response;
            }
        };
        // A route whose plugin is not loaded (yet, or any more) does not exist.
        let Some(plugin) = self.app.plugins.get(name) else {
            return error::not_found();
        };
        tracing::Span::current().record("plugin", name);
        let request = match self.read_body(request).await {
            Ok(request) => request,
            Err(response) => return response,
        };
        match invoke::handle_http(&self.app, plugin, request).await {
            Ok(response) => response,
            Err(HttpInvokeError::Timeout) => error::error(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "the request did not finish within its deadline",
            ),
            Err(HttpInvokeError::NotHttp(_)) => error::not_found(),
            Err(HttpInvokeError::Trap | HttpInvokeError::NoResponse) => error::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "plugin_trap",
                "the plugin failed while handling the request",
            ),
        }
    }

    /// Reads the whole body, refusing it with 413 as soon as it passes the limit (before
    /// reading it all when `Content-Length` says so).
    async fn read_body(
        &self,
        request: Request<Incoming>,
    ) -> Result<Request<Full<Bytes>>, Response<HyperOutgoingBody>> {
        let limit = self.app.config.server.body_limit;
        let too_large = || {
            error::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("the request body is larger than {limit} bytes"),
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(too_large());
        }
        let (parts, body) = request.into_parts();
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(Request::from_parts(parts, Full::new(collected.to_bytes()))),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            Err(_) => Err(error::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request body could not be read",
            )),
        }
    }
}
