//! The sender of outbound HTTP, connecting to the addresses the grants were checked
//! against. wasmtime-wasi-http's `default_send_request` is handed a URI and resolves its
//! host again to connect: a name answering a public address to the check and loopback to
//! that second lookup (DNS rebinding) would reach what the check refused. This one is
//! handed the checked addresses and otherwise does what it does (its timeouts, its errors,
//! its response body), over hyper's HTTP/1 client and, for https, rustls with the webpki
//! roots, SNI the URI's host.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http::uri::Scheme;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::either::Either;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// What a request option left unset waits: `default_send_request`'s ten minutes (the
/// invocation's deadline cuts it short anyway).
const UNSET_TIMEOUT: Duration = Duration::from_secs(600);

/// Sends outgoing requests; holds the TLS client config every https request shares.
pub struct Sender {
    tls: TlsConnector,
}

/// The I/O of a request's connection, to drive while its response body is read.
pub type Connection = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

impl Sender {
    pub fn new() -> Self {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        // ring, the provider wasmtime-wasi-http's rustls is built with (and the only one
        // in the tree), named so no process-wide default is needed.
        let config = rustls::ClientConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls' default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Self {
            tls: TlsConnector::from(Arc::new(config)),
        }
    }

    /// Sends `request` over a connection to the first of `addresses` that answers, within
    /// the request's connect timeout and never past `deadline`.
    pub async fn send(
        &self,
        mut request: http::Request<WasiBody>,
        addresses: &[SocketAddr],
        options: Option<RequestOptions>,
        deadline: Instant,
    ) -> Result<(http::Response<ResponseBody>, Connection), Error> {
        let options = options.unwrap_or_default();
        let connect_timeout = options.connect_timeout.unwrap_or(UNSET_TIMEOUT);
        let first_byte_timeout = options.first_byte_timeout.unwrap_or(UNSET_TIMEOUT);
        // A zero interval panics in tokio; a nanosecond is as good as zero.
        let between_bytes_timeout = options
            .between_bytes_timeout
            .unwrap_or(UNSET_TIMEOUT)
            .max(Duration::from_nanos(1));

        let connected_by = Instant::now()
            .checked_add(connect_timeout)
            .map_or(deadline, |by| by.min(deadline));
        let stream =
            tokio::time::timeout_at(connected_by.into(), self.connect(request.uri(), addresses))
                .await
                .map_err(|_| Error::ConnectionTimeout)??;
        let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;

        // The request line carries the path only: scheme and authority are for proxies.
        *request.uri_mut() = request
            .uri()
            .path_and_query()
            .map_or_else(|| http::Uri::from_static("/"), |p| p.clone().into());
        let response = async {
            let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
                .await
                .map_err(|_| Error::ConnectionReadTimeout)??;
            let mut timeout = tokio::time::interval(between_bytes_timeout);
            timeout.reset();
            Ok::<_, Error>(response.map(|incoming| ResponseBody { incoming, timeout }))
        };
        // The connection is driven while the response is awaited; what is left of it is
        // handed back, to drive while the body is read.
        let mut connection = Box::pin(connection);
        tokio::pin!(response);
        let (response, connection): (_, Connection) = tokio::select! {
            response = &mut response => (response?, Box::pin(async move {
                connection.await.map_err(|e| {
                    if e.is_timeout() { Error::HttpResponseTimeout } else { e.into() }
                })
            })),
            ended = &mut connection => {
                ended?;
                (response.await?, Box::pin(async { Ok(()) }))
            }
        };
        Ok((response, connection))
    }

    /// A TCP connection to the first of `addresses` that accepts one, with TLS on top for
    /// https.
    async fn connect(
        &self,
        uri: &http::Uri,
        addresses: &[SocketAddr],
    ) -> Result<Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>, Error> {
        let mut refused = None;
        let mut tcp = None;
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => refused = Some(e),
            }
        }
        let tcp = match (tcp, refused) {
            (Some(tcp), _) => tcp,
            (None, Some(e)) => return Err(Error::Connect(e)),
            (None, None) => return Err(Error::DestinationNotFound),
        };
        if uri.scheme() != Some(&Scheme::HTTPS) {
            return Ok(Either::Left(tcp));
        }
        let host = uri.host().unwrap_or_default();
        let name = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => ServerName::from(ip),
            // What wasmtime-wasi-http answers a name rustls refuses.
            Err(_) => ServerName::try_from(host)
                .map_err(|_| Error::DnsError {
                    rcode: Some("invalid dns name".into()),
                    info_code: None,
                })?
                .to_owned(),
        };
        let tls = self.tls.connect(name, tcp).await.map_err(Error::Tls)?;
        Ok(Either::Right(tls))
    }
}

/// A response's body: hyper's, with the request's `between_bytes_timeout` between frames.
pub struct ResponseBody {
    incoming: Incoming,
    timeout: tokio::time::Interval,
}

impl http_body::Body for ResponseBody {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) if e.is_timeout() => {
                Poll::Ready(Some(Err(Error::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}
