//! Outbound HTTP (`wasi:http/outgoing-handler`): linked for every plugin, denied unless
//! `[plugin.<name>] http` grants the destination.
//!
//! A grant is a `scheme://host:port` pattern (`*` for any port, `*.example.com` for
//! subdomains). The destination is checked against the patterns and then against the
//! addresses it resolves to: a loopback or link-local address (the host itself, cloud
//! metadata endpoints) is reached only when a pattern names that host literally. Each
//! destination has its own circuit breaker (`http:<scheme>://<host>:<port>`), a call never
//! outlives the invocation's deadline, and it carries the invocation's W3C `traceparent`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use crate::app::App;
use crate::rpc::breaker::{Outcome, Refusal};

/// One `scheme://host:port` grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    scheme: String,
    host: String,
    /// `None` matches any port.
    port: Option<u16>,
}

impl Pattern {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let (scheme, rest) = pattern
            .split_once("://")
            .ok_or("expected scheme://host:port")?;
        if scheme != "http" && scheme != "https" {
            return Err(format!("scheme {scheme:?} is not http or https"));
        }
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or("expected scheme://host:port (use :* for any port)")?;
        if host.is_empty() || host.contains('/') {
            return Err(format!("bad host {host:?}"));
        }
        let port = match port {
            "*" => None,
            p => Some(p.parse().map_err(|_| format!("bad port {p:?}"))?),
        };
        Ok(Self {
            scheme: scheme.into(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host_matches = match self.host.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => self.host == host,
        };
        self.scheme == scheme && host_matches && self.port.is_none_or(|p| p == port)
    }

    /// Whether this grant names its host literally (no wildcard), which is what reaching a
    /// loopback or link-local address requires.
    fn is_literal(&self) -> bool {
        !self.host.starts_with('*')
    }
}

fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The `WasiHttpHooks` of one invocation.
pub struct OutgoingHttp {
    app: Arc<App>,
    plugin: String,
    grants: Arc<Vec<Pattern>>,
    call: crate::runtime::state::CallContext,
}

impl OutgoingHttp {
    pub fn prepare(
        app: &Arc<App>,
        plugin: &crate::plugins::Plugin,
        call: crate::runtime::state::CallContext,
    ) -> Self {
        Self {
            app: app.clone(),
            plugin: plugin.name.clone(),
            grants: plugin.http_grants.clone(),
            call,
        }
    }
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
        let app = self.app.clone();
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
                let addresses = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
                    .await
                    .map_err(|_| Error::DnsError {
                        rcode: Some("lookup failed".into()),
                        info_code: None,
                    })?;
                if addresses.into_iter().any(|a| is_local(a.ip())) && !grant.is_literal() {
                    return Err(denied(
                        "a loopback or link-local address needs a literal grant",
                    ));
                }
                let breaker = app.breakers.get(&format!("http:{scheme}://{host}:{port}"));
                let permit = breaker.try_acquire().map_err(|refusal| match refusal {
                    Refusal::CircuitOpen => Error::DestinationUnavailable,
                    Refusal::Rejected => Error::ConnectionLimitReached,
                })?;
                let timeout = breaker
                    .timeout()
                    .min(deadline.saturating_duration_since(Instant::now()));
                if let Ok(value) = http::HeaderValue::from_str(&traceparent) {
                    request.headers_mut().insert("traceparent", value);
                }
                let sent = tokio::time::timeout(
                    timeout,
                    wasmtime_wasi_http::default_send_request(request, options),
                )
                .await;
                match sent {
                    Ok(Ok((response, io))) => {
                        span.record("http.response.status_code", response.status().as_u16());
                        permit.complete(if response.status().is_server_error() {
                            Outcome::Failure
                        } else {
                            Outcome::Success
                        });
                        use http_body_util::BodyExt;
                        Ok((
                            response.map(BodyExt::boxed_unsync),
                            Box::new(io) as Box<dyn Future<Output = _> + Send>,
                        ))
                    }
                    Ok(Err(e)) => {
                        permit.complete(Outcome::Failure);
                        Err(e)
                    }
                    Err(_elapsed) => {
                        permit.complete(Outcome::Timeout);
                        Err(Error::ConnectionTimeout)
                    }
                }
            }
            .instrument(in_span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = Pattern::parse("https://*.example.com:*").unwrap();
        assert!(p.matches("https", "api.example.com", 8443));
        assert!(!p.matches("https", "example.com", 443));
        assert!(!p.matches("http", "api.example.com", 80));
        assert!(!p.is_literal());
        let p = Pattern::parse("http://127.0.0.1:9000").unwrap();
        assert!(p.matches("http", "127.0.0.1", 9000));
        assert!(!p.matches("http", "127.0.0.1", 9001));
        assert!(p.is_literal());
        for bad in [
            "127.0.0.1:80",
            "ftp://x:1",
            "http://x",
            "http://:80",
            "http://x:port",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn local_addresses() {
        for local in ["127.0.0.1", "::1", "169.254.169.254", "fe80::1", "0.0.0.0"] {
            assert!(is_local(local.parse().unwrap()), "{local}");
        }
        assert!(!is_local("93.184.216.34".parse().unwrap()));
    }
}
