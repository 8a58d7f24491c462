//! One front door: accept connections (HTTP/1.1 and HTTP/2, over TLS when given an
//! acceptor) on a listener and serve each with a handler, held to the `[front]` limits it
//! is given. Every listener of the host (public, admin, rpc) is one call of [`serve`] with
//! limits of its own.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::budget::{AddressSlots, BodyBudget};
use super::conn::{self, Over, Socket};
use super::metrics::FrontMetrics;
use super::stop::StopSignal;
use super::{ClientAddr, FrontConfig, MIN_HEADER_BYTES, TlsPeer};

/// hyper's builder with the `[front]` limits hyper enforces itself.
fn builder(limits: &FrontConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut http1 = builder.http1();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES));
    // hyper's own default is 100 on the stack; another count moves headers to the heap.
    if limits.max_headers != 100 {
        http1.max_headers(limits.max_headers);
    }
    let ping = Duration::from_millis(limits.http2_ping_interval_ms);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.max_streams_per_connection)
        .keep_alive_interval(ping)
        .keep_alive_timeout(ping);
    builder
}

/// The connection's stream: `tcp` itself, or, with an acceptor, TLS over it once the
/// handshake has ended within `timeout` (`None`, counted and logged, if it has not: a
/// plaintext client, a client certificate the acceptor refuses).
async fn secure(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    timeout: Duration,
    peer: std::net::SocketAddr,
    metrics: &FrontMetrics,
) -> Option<Socket> {
    let Some(acceptor) = tls else {
        return Some(Either::Left(tcp));
    };
    let error = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => return Some(Either::Right(stream)),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "not done within header_read_timeout_ms".into(),
    };
    if let Some(total) = metrics.tls_handshakes_failed.hit() {
        tracing::warn!(%peer, %error, total, "connection closed: TLS handshake failed");
    }
    None
}

/// Serves `listener` with `handler` until `shutdown` resolves, then stops accepting and
/// waits for the connections in flight to finish their requests. With `tls`, every
/// connection must complete a TLS handshake within `header_read_timeout_ms` first.
///
/// Every connection is held to `limits`: at most `max_connections` at once and
/// `max_connections_per_address` from one address (one more is answered 503), a request
/// head within `header_read_timeout_ms` (408) and of at most `max_header_bytes` /
/// `max_headers` (431), bodies within its share of the body budgets (503), writes that
/// progress within `write_timeout_ms`, and closed after `idle_timeout_ms` without a request
/// (dropped `close_grace_ms` later if it does not close). What it refuses is counted in
/// `metrics`.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: FrontConfig,
    metrics: Arc<FrontMetrics>,
    handler: H,
    mut stop: StopSignal,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<HyperOutgoingBody>> + Send + 'static,
{
    let builder = Arc::new(builder(&limits));
    let handshake_timeout = Duration::from_millis(limits.header_read_timeout_ms);
    let idle_timeout = Duration::from_millis(limits.idle_timeout_ms);
    let close_grace = Duration::from_millis(limits.close_grace_ms);
    let write_timeout = Duration::from_millis(limits.write_timeout_ms);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = AddressSlots::new(limits.max_connections_per_address);
    let bodies = BodyBudget::listener(limits.max_body_bytes_buffered);
    let overflow = conn::Overflow::new();
    let (closing, closed) = tokio::sync::watch::channel(false);
    // Once stopped, the connections already waiting in the backlog are still taken (the
    // kernel accepted them: closing the listener would reset them), straight from the
    // socket (tokio's readiness may not have seen the newest yet), then no more.
    let mut listener = Some(listener);
    let mut backlog: Option<std::net::TcpListener> = None;
    loop {
        let accepted = match (&backlog, &listener) {
            (Some(queue), _) => match queue.accept() {
                Ok((stream, peer)) => stream
                    .set_nonblocking(true)
                    .and_then(|()| TcpStream::from_std(stream))
                    .map(|stream| (stream, peer)),
                // Empty (`WouldBlock`), or failing: no more.
                Err(_) => break,
            },
            (None, Some(open)) => tokio::select! {
                accepted = open.accept() => accepted,
                () = stop.stopped() => {
                    backlog = listener.take().and_then(|l| l.into_std().ok());
                    if backlog.is_none() {
                        break;
                    }
                    continue;
                }
            },
            (None, None) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(_) if backlog.is_some() => continue,
            Err(e) => {
                // Out of file descriptors and the like: keep serving the others.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            overflow.refuse(
                stream,
                peer,
                Over::Listener(limits.max_connections),
                &metrics,
            );
            continue;
        };
        let Some(address_slot) = per_address.take(peer.ip()) else {
            let cap = limits.max_connections_per_address;
            overflow.refuse(stream, peer, Over::Address(cap), &metrics);
            continue;
        };
        metrics.connections_accepted.inc();
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let budget = BodyBudget::new(limits.max_body_bytes_per_connection, bodies.clone());
        let (builder, tls, draining) = (builder.clone(), tls.clone(), stop.clone());
        let mut closed = closed.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slots = (permit, address_slot);
            // In this task, never in the accept loop: a slow handshake holds only its own
            // connection's slots.
            let Some(socket) = secure(stream, tls, handshake_timeout, peer, &metrics).await else {
                return;
            };
            let tls_peer = match &socket {
                Either::Right(tls) => tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|cert| TlsPeer(Arc::new(cert.clone()))),
                Either::Left(_) => None,
            };
            let activity = conn::Activity::new();
            let requests = activity.clone();
            let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ClientAddr(peer));
                request.extensions_mut().insert(budget.clone());
                if let Some(tls_peer) = &tls_peer {
                    request.extensions_mut().insert(tls_peer.clone());
                }
                let busy = requests.begin();
                let http1 = request.version() < http::Version::HTTP_2;
                let response = handler(request);
                let draining = draining.clone();
                async move {
                    let mut response = response.await;
                    // The host is stopping: this client had better reconnect elsewhere.
                    if http1 && draining.is_draining() {
                        let close = http::HeaderValue::from_static("close");
                        response
                            .headers_mut()
                            .insert(http::header::CONNECTION, close);
                    }
                    Ok::<_, Infallible>(busy.until_sent(response))
                }
            });
            let io = TokioIo::new(conn::Metered::new(socket, activity.clone(), write_timeout));
            let connection = builder.serve_connection_with_upgrades(io, service);
            metrics.connections_open.inc();
            tokio::pin!(connection);
            // When the connection was asked to close.
            let mut stopping: Option<Instant> = None;
            let result = loop {
                tokio::select! {
                    result = connection.as_mut() => break result,
                    () = activity.idle(idle_timeout), if stopping.is_none() => {
                        metrics.idle_closed.inc();
                        tracing::debug!(%peer, "idle connection closed");
                        connection.as_mut().graceful_shutdown();
                        stopping = Some(Instant::now());
                    }
                    _ = closed.wait_for(|closed| *closed), if stopping.is_none() => {
                        // hyper would close a connection still waiting for its first
                        // request at once, resetting a request already on the wire: it is
                        // left to answer that one with `Connection: close` (the host is
                        // draining), or to the close grace if nothing comes.
                        if !activity.awaits_first_request() {
                            connection.as_mut().graceful_shutdown();
                        }
                        stopping = Some(Instant::now());
                    }
                    // Asked to close, nothing in progress, still open: the client holds it
                    // (an HTTP/2 client never answering the closing PING does).
                    () = activity.idle_after(stopping.unwrap_or_else(Instant::now), close_grace), if stopping.is_some() => {
                        metrics.close_forced.inc();
                        tracing::debug!(%peer, "connection dropped: it did not close in close_grace_ms");
                        break Ok(());
                    }
                }
            };
            if let Err(e) = result {
                conn::ended(&*e, &activity, peer, &metrics);
            }
            metrics.connections_open.dec();
        });
    }
    // Closed now, not when the connections below are done: the kernel would go on
    // completing handshakes into a backlog no one takes, and reset them all at the end.
    drop((listener, backlog));
    let _ = closing.send(true);
    // Each connection holds a permit until it ends: having them all back means every
    // connection has finished.
    let _ = open
        .acquire_many(u32::try_from(limits.max_connections).unwrap_or(u32::MAX))
        .await;
    Ok(())
}
