//! The `WasiHttpHooks` of one instance: every outgoing request is checked against the
//! plugin's grants and the addresses its host resolves to, then sent to those very
//! addresses through its destination's breaker within the invocation's deadline, carrying
//! its `traceparent`. WASI 0.2 and 0.3 components' requests both come through here.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::connect::Sender;
use super::pattern::{Pattern, is_local};
use super::resolve::Resolver;
use crate::breaker::{Breakers, Outcome, Refusal};
use crate::capability::CallContext;

/// The `WasiHttpHooks` of one instance.
pub struct OutgoingHttp {
    pub(super) breakers: Arc<Breakers>,
    pub(super) resolver: Arc<Resolver>,
    pub(super) sender: Arc<Sender>,
    pub(super) plugin: Arc<str>,
    pub(super) grants: Arc<[Pattern]>,
    pub(super) call: CallContext,
}

type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

impl wasmtime_wasi_http::WasiHttpHooks for OutgoingHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = wasmtime_wasi_http::Result<Sent>> + Send> {
        let breakers = self.breakers.clone();
        let resolver = self.resolver.clone();
        let sender = self.sender.clone();
        let plugin = self.plugin.clone();
        let grants = self.grants.clone();
        let deadline = self.call.deadline;
        // Opened here, in the invocation's span: the future may run on another task.
        let span = tracing::info_span!(
            "http.client",
            otel.kind = "client",
            otel.name = %request.method(),
            http.request.method = %request.method(),
            server.address = request.uri().host().unwrap_or_default(),
            server.port = request.uri().port_u16(),
            http.response.status_code = tracing::field::Empty,
        );
        let traceparent = self.call.trace.outgoing(&span).to_string();
        let mut request = request;
        let in_span = span.clone();
        Box::new(
            async move {
                let uri = request.uri();
                let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
                let host = uri.host().unwrap_or_default().to_ascii_lowercase();
                let port = uri
                    .port_u16()
                    .unwrap_or(if scheme == "https" { 443 } else { 80 });
                let denied = |why: &str| {
                    tracing::warn!(%plugin, %scheme, %host, port, why, "outbound HTTP denied");
                    Error::HttpRequestDenied
                };
                let grant = grants
                    .iter()
                    .find(|g| g.matches(&scheme, &host, port))
                    .ok_or_else(|| denied("no [plugin] http grant matches"))?;
                let addresses =
                    tokio::time::timeout_at(deadline.into(), resolver.resolve(&host, port))
                        .await
                        .map_err(|_| Error::DnsTimeout)??;
                if addresses.iter().any(|a| is_local(a.ip())) && !grant.is_literal() {
                    return Err(denied(
                        "a loopback, private or other non-public address needs a literal grant",
                    ));
                }
                if let Ok(value) = http::HeaderValue::from_str(&traceparent) {
                    request.headers_mut().insert("traceparent", value);
                }
                let breaker = breakers.get(&format!("http:{scheme}://{host}:{port}"));
                let budget = deadline.saturating_duration_since(Instant::now());
                let sent = breaker
                    .call(
                        budget,
                        sender.send(request, &addresses, options, deadline),
                        |sent| match sent {
                            Ok((response, _)) if !response.status().is_server_error() => {
                                Outcome::Success
                            }
                            _ => Outcome::Failure,
                        },
                    )
                    .await;
                match sent {
                    Ok(Ok((response, io))) => {
                        span.record("http.response.status_code", response.status().as_u16());
                        use http_body_util::BodyExt;
                        Ok((
                            response.map(BodyExt::boxed_unsync),
                            Box::new(io) as Box<dyn Future<Output = _> + Send>,
                        ))
                    }
                    Ok(Err(e)) => Err(e),
                    Err(Refusal::CircuitOpen) => Err(Error::DestinationUnavailable),
                    Err(Refusal::Rejected) => Err(Error::ConnectionLimitReached),
                    Err(Refusal::Timeout) => Err(Error::ConnectionTimeout),
                }
            }
            .instrument(in_span),
        )
    }
}
