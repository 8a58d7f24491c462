//! One connection of a front door, watched: what hyper's builder options do not do for us.
//!
//! hyper enforces the header read timeout, the header size and count (431) and, for
//! HTTP/1.1, runs that timer while a connection waits for its next request too. By hand,
//! because hyper has no option for them:
//! - answering 408 when the header timer fires on a request already begun (hyper closes
//!   without a word): [`Metered`] sees whether bytes arrived since the last response;
//! - the idle timeout of HTTP/2 connections, and a shorter one than the header timer for
//!   HTTP/1.1: [`Activity::idle`] (hyper's HTTP/2 server never closes an idle connection);
//! - the connection caps' 503 ([`Overflow::refuse`]): hyper never sees a connection over a
//!   cap;
//! - the write timeout ([`Metered`]): hyper's writes wait for the socket as long as it takes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Response;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;
// tokio's clock, so the watchdog follows a paused test clock too.
use tokio::time::Instant;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::metrics::FrontMetrics;

/// How a connection is used, shared by its IO, its requests and its watchdog.
pub(super) struct Activity {
    born: Instant,
    /// Requests whose response has not been sent whole yet.
    in_flight: AtomicUsize,
    /// A request has begun on it (it is not a connection still waiting for its first).
    used: AtomicBool,
    /// Bytes arrived since the connection last went idle: a request is on its way.
    receiving: AtomicBool,
    /// The connection speaks HTTP/2 (its first bytes are the HTTP/2 preface).
    http2: AtomicBool,
    /// When the connection last went idle, in ms since `born`.
    idle_since_ms: AtomicU64,
    /// Answer 408 as the connection closes.
    answer_timeout: AtomicBool,
    /// A write made no progress within the write timeout.
    write_stalled: AtomicBool,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            used: AtomicBool::new(false),
            receiving: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            answer_timeout: AtomicBool::new(false),
            write_stalled: AtomicBool::new(false),
        })
    }

    /// A request's head has arrived; the connection is busy until the returned guard (held
    /// by the response body) is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Relaxed);
        self.used.store(true, Relaxed);
        Busy(self.clone())
    }

    /// An HTTP/1.1 connection on which no request has begun yet: its client has just
    /// connected, and its first request may be on the wire.
    pub(super) fn awaits_first_request(&self) -> bool {
        !self.used.load(Relaxed) && !self.http2.load(Relaxed)
    }

    /// When the connection went idle, or `None` while it is serving or receiving a request.
    /// An HTTP/2 connection counts as idle whenever no stream is being served: its
    /// pings and settings are no request.
    fn idle_since(&self) -> Option<Instant> {
        let receiving = self.receiving.load(Relaxed) && !self.http2.load(Relaxed);
        if self.in_flight.load(Relaxed) > 0 || receiving {
            return None;
        }
        Some(self.born + Duration::from_millis(self.idle_since_ms.load(Relaxed)))
    }

    /// Resolves once the connection has been idle for `timeout`. A request head on its way
    /// is left to hyper's header timer, which answers it 408.
    pub(super) async fn idle(&self, timeout: Duration) {
        self.idle_after(self.born, timeout).await;
    }

    /// Resolves once the connection has been idle for `timeout`, counted from `from` at the
    /// earliest.
    pub(super) async fn idle_after(&self, from: Instant, timeout: Duration) {
        loop {
            match self.idle_since().map(|since| since.max(from)) {
                Some(since) if since.elapsed() >= timeout => return,
                Some(since) => tokio::time::sleep_until(since + timeout).await,
                // Busy: it cannot go idle sooner than `timeout` after now.
                None => tokio::time::sleep(timeout).await,
            }
        }
    }

    /// Whether a request had begun to arrive when the connection ended.
    pub(super) fn was_receiving(&self) -> bool {
        self.receiving.load(Relaxed)
    }

    /// Has the connection answer 408 as it closes.
    pub(super) fn answer_timeout_on_close(&self) {
        self.answer_timeout.store(true, Relaxed);
    }
}

/// A request in progress on its connection.
pub(super) struct Busy(Arc<Activity>);

impl Busy {
    /// Keeps the connection busy until `response`'s body has been sent (or dropped).
    pub(super) fn until_sent(
        self,
        response: Response<HyperOutgoingBody>,
    ) -> Response<HyperOutgoingBody> {
        response.map(|body| {
            body.map_frame(move |frame| {
                let _busy = &self;
                frame
            })
            .boxed_unsync()
        })
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.in_flight.fetch_sub(1, Relaxed) == 1 {
            activity.receiving.store(false, Relaxed);
            let now = activity.born.elapsed().as_millis() as u64;
            activity.idle_since_ms.store(now, Relaxed);
        }
    }
}

/// A connection's byte stream: plain TCP, or TLS over it (a listener with a TLS acceptor).
pub(super) type Socket = Either<TcpStream, TlsStream<TcpStream>>;

/// The connection's socket as hyper reads and writes it (the plaintext, over TLS), noting
/// when bytes arrive and failing a write that makes no progress within `write_timeout` (a
/// client that does not read its responses); it writes the 408 when a plain TCP
/// connection closes on a request that timed out.
pub(super) struct Metered {
    stream: Socket,
    activity: Arc<Activity>,
    first_read: bool,
    write_timeout: Duration,
    /// Runs while a write waits for room in the socket.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Metered {
    pub(super) fn new(stream: Socket, activity: Arc<Activity>, write_timeout: Duration) -> Self {
        Self {
            stream,
            activity,
            first_read: true,
            write_timeout,
            stalled: None,
        }
    }

    /// `polled` (a write's result) unless the write has waited past the write timeout.
    fn unless_stalled(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.write_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if stalled.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.activity.write_stalled.store(true, Relaxed);
        Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
    }
}

/// The start of the HTTP/2 connection preface.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

impl AsyncRead for Metered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        let read = &buf.filled()[before..];
        if !read.is_empty() {
            if self.first_read {
                self.first_read = false;
                let n = read.len().min(HTTP2_PREFACE.len());
                if read[..n] == HTTP2_PREFACE[..n] {
                    self.activity.http2.store(true, Relaxed);
                }
            }
            self.activity.receiving.store(true, Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.unless_stalled(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.unless_stalled(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // Best effort, without waiting: a small answer into an idle socket's send buffer
        // (over TLS it would need a record written synchronously: the connection just
        // closes).
        if self.activity.answer_timeout.load(Relaxed)
            && let Either::Left(tcp) = &self.stream
        {
            let answer = canned(
                "408 Request Timeout",
                "request_timeout",
                "the request head was not received in time",
            );
            let _ = tcp.try_write(&answer);
        }
    }
}

/// Classifies how a connection ended, counts and logs it, and asks for the 408 when the
/// header timer fired on a request already begun.
pub(super) fn ended(
    error: &(dyn std::error::Error + Send + Sync + 'static),
    activity: &Activity,
    peer: SocketAddr,
    metrics: &FrontMetrics,
) {
    if activity.write_stalled.load(Relaxed) {
        if let Some(total) = metrics.write_timeouts.hit() {
            tracing::warn!(%peer, total, "connection closed: a response write made no progress within write_timeout_ms");
        }
        return;
    }
    let Some(hyper_error) = error.downcast_ref::<hyper::Error>() else {
        tracing::debug!(%peer, error = %error, "connection ended with an error");
        return;
    };
    if hyper_error.is_timeout() {
        if activity.was_receiving() {
            activity.answer_timeout_on_close();
            if let Some(total) = metrics.header_timeouts.hit() {
                tracing::warn!(%peer, total, "408: request head not received within header_read_timeout_ms");
            }
        } else {
            metrics.idle_closed.inc();
            tracing::debug!(%peer, "idle connection closed by the header timer");
        }
    } else if hyper_error.is_parse_too_large() {
        if let Some(total) = metrics.headers_too_large.hit() {
            tracing::warn!(%peer, total, "431: request head over max_header_bytes or max_headers");
        }
    } else {
        tracing::debug!(%peer, error = %hyper_error, "connection ended with an error");
    }
}

/// Refusals being written at once; past it, a connection over the cap is simply closed.
const REFUSALS_AT_ONCE: usize = 64;
/// How long a refusal may take, reading included.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// Which connection cap a refused connection is over.
pub(super) enum Over {
    /// `max_connections`.
    Listener(usize),
    /// `max_connections_per_address`.
    Address(usize),
}

/// Refusals of connections over a cap.
pub(super) struct Overflow(Arc<Semaphore>);

impl Overflow {
    pub(super) fn new() -> Self {
        Self(Arc::new(Semaphore::new(REFUSALS_AT_ONCE)))
    }

    /// Answers a connection over the cap 503 and closes it. What the client sent is read
    /// (briefly) and dropped, so the close does not reset the connection before the client
    /// has read the answer.
    pub(super) fn refuse(
        &self,
        mut stream: TcpStream,
        peer: SocketAddr,
        over: Over,
        metrics: &FrontMetrics,
    ) {
        match over {
            Over::Listener(cap) => {
                if let Some(total) = metrics.connections_refused.hit() {
                    tracing::warn!(%peer, total, max_connections = cap, "503: connection over max_connections");
                }
            }
            Over::Address(cap) => {
                if let Some(total) = metrics.address_connections_refused.hit() {
                    tracing::warn!(%peer, total, max_connections_per_address = cap, "503: connection over max_connections_per_address");
                }
            }
        }
        let Ok(permit) = self.0.clone().try_acquire_owned() else {
            return;
        };
        tokio::spawn(async move {
            let _permit = permit;
            let answer = canned(
                "503 Service Unavailable",
                "unavailable",
                "too many connections; try again shortly",
            );
            let _ = tokio::time::timeout(REFUSAL_TIME, async {
                stream.write_all(&answer).await?;
                stream.shutdown().await?;
                let mut sink = [0u8; 4096];
                while stream.read(&mut sink).await? > 0 {}
                io::Result::Ok(())
            })
            .await;
        });
    }
}

/// A whole HTTP/1.1 answer in the gateway's error shape, for a connection hyper does not
/// (or no longer) serve; it asks the client to close.
fn canned(status: &str, code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    let retry = if status.starts_with("503") {
        "retry-after: 1\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_answers_are_whole_http_responses() {
        let answer =
            String::from_utf8(canned("503 Service Unavailable", "unavailable", "x")).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("retry-after: 1"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "unavailable");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_the_last_response() {
        let activity = Activity::new();
        let busy = activity.begin();
        let idle = activity.idle(Duration::from_secs(5));
        tokio::pin!(idle);
        // Busy for 20 s: never idle meanwhile.
        assert!(
            tokio::time::timeout(Duration::from_secs(20), idle.as_mut())
                .await
                .is_err()
        );
        drop(busy);
        let went_idle = Instant::now();
        idle.await;
        let waited = went_idle.elapsed();
        assert!(
            waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_on_its_way_is_left_to_the_header_timer_unless_http2() {
        let activity = Activity::new();
        activity.receiving.store(true, Relaxed);
        let idle = tokio::time::timeout(
            Duration::from_secs(60),
            activity.idle(Duration::from_secs(5)),
        );
        assert!(idle.await.is_err());
        activity.http2.store(true, Relaxed);
        let idle = tokio::time::timeout(
            Duration::from_secs(60),
            activity.idle(Duration::from_secs(5)),
        );
        assert!(idle.await.is_ok());
    }
}
