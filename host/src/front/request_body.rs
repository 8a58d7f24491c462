//! Request bodies on their way to a plugin. Most stream ([`Streamed`]): the guest reads the
//! bytes as they arrive, as under `wasmtime serve`, so an echo answers before the upload ends
//! and a proxy forwards it as it comes. The body is still held to its limits while it
//! streams: past `[server] body_limit` or its connection's or the listener's body budget the
//! stream fails, and the [`BodyWatch`] beside it tells the gateway why, so the answer is the
//! client's (413, 503, 400, or 408 when the guest was left waiting at the deadline) and not
//! the plugin's failure. A route whose answer depends on the body itself (the login
//! limiter's, which reads the user name) reads it whole first ([`collect`]).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use wasmtime_wasi_http::{Error as WasiHttpError, WasiBody};

use super::budget::{BodyBudget, BodyBytes};

/// Why a request body was not read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRefusal {
    /// 413: past `[server] body_limit`.
    TooLarge,
    /// 503: past its connection's or the listener's body budget.
    OverBudget,
    /// 400: the client broke off or sent a malformed body.
    Unreadable,
    /// 408: the body had not arrived by the request's deadline.
    TooSlow,
}

/// The body's bytes, at most `limit` of them, each counted against `budget` as it arrives
/// (a request without one, from a caller other than [`crate::front::serve`], counts none).
pub async fn collect(
    mut body: Incoming,
    limit: usize,
    budget: Option<&Arc<BodyBudget>>,
) -> Result<(Bytes, Option<BodyBytes>), BodyRefusal> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0;
    let mut held = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| BodyRefusal::Unreadable)?.into_data() else {
            continue; // trailers
        };
        len += data.len();
        if len > limit {
            return Err(BodyRefusal::TooLarge);
        }
        if let Some(budget) = budget
            && !budget.reserve(data.len(), &mut held)
        {
            return Err(BodyRefusal::OverBudget);
        }
        chunks.push(data);
    }
    // Most bodies arrive as one frame: no copy then.
    let bytes = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => chunks.concat().into(),
    };
    Ok((bytes, held))
}

/// A body already whole (read by the login limiter, or empty), in the type the plugin reads.
pub fn whole(bytes: Bytes) -> WasiBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// What became of a [`Streamed`] body, seen by the gateway while the guest reads it, and
/// the body itself, so the gateway can cut it: a body refused at the deadline must not keep
/// its connection open for as long as the guest would go on reading it.
#[derive(Default)]
pub struct BodyWatch {
    /// 0 until the guest first asks for the body, then one of the constants below.
    state: AtomicU8,
    /// Bytes handed to the guest so far.
    read: AtomicUsize,
    stream: Mutex<Stream>,
}

#[derive(Default)]
struct Stream {
    /// None once the body ended, failed or was cut.
    body: Option<Incoming>,
    /// The guest's, while it waits for the client's bytes: woken when the body is cut.
    waiting: Option<Waker>,
}

const READING: u8 = 1;
/// The guest is waiting for bytes the client has not sent yet.
const STARVED: u8 = 2;
const COMPLETE: u8 = 3;
const TOO_LARGE: u8 = 4;
const OVER_BUDGET: u8 = 5;
const UNREADABLE: u8 = 6;
const TOO_SLOW: u8 = 7;

impl BodyWatch {
    /// Why the stream failed, if it did; with `deadline_passed`, a body the guest was
    /// reading and the client had not finished is the client's delay (408), not the
    /// plugin's.
    pub fn refusal(&self, deadline_passed: bool) -> Option<BodyRefusal> {
        match self.state.load(Ordering::Acquire) {
            TOO_LARGE => Some(BodyRefusal::TooLarge),
            OVER_BUDGET => Some(BodyRefusal::OverBudget),
            UNREADABLE => Some(BodyRefusal::Unreadable),
            TOO_SLOW => Some(BodyRefusal::TooSlow),
            READING | STARVED if deadline_passed => Some(BodyRefusal::TooSlow),
            _ => None,
        }
    }

    /// Ends the body for `refusal`: dropped, so its connection closes after the answer, and
    /// the guest, if it waits for it, woken to read the error.
    pub fn cut(&self, refusal: BodyRefusal) {
        let state = match refusal {
            BodyRefusal::TooLarge => TOO_LARGE,
            BodyRefusal::OverBudget => OVER_BUDGET,
            BodyRefusal::Unreadable => UNREADABLE,
            BodyRefusal::TooSlow => TOO_SLOW,
        };
        self.set(state);
        let mut stream = self.stream.lock();
        stream.body = None;
        if let Some(waker) = stream.waiting.take() {
            waker.wake();
        }
    }

    /// Bytes the guest has read so far.
    pub fn bytes_read(&self) -> usize {
        self.read.load(Ordering::Relaxed)
    }

    /// Whether the body ended, one way or another.
    pub fn settled(&self) -> bool {
        self.state.load(Ordering::Acquire) >= COMPLETE
    }

    fn set(&self, state: u8) {
        self.state.store(state, Ordering::Release);
    }
}

/// A request body streamed to the guest within its limits.
pub struct Streamed {
    watch: Arc<BodyWatch>,
    limit: usize,
    budget: Option<Arc<BodyBudget>>,
    /// The body budget this body holds, given back when the guest drops the body.
    held: Option<BodyBytes>,
}

impl Streamed {
    pub fn new(body: Incoming, limit: usize, budget: Option<Arc<BodyBudget>>) -> Self {
        let watch = BodyWatch {
            stream: Mutex::new(Stream {
                body: Some(body),
                waiting: None,
            }),
            ..BodyWatch::default()
        };
        Self {
            watch: Arc::new(watch),
            limit,
            budget,
            held: None,
        }
    }

    pub fn watch(&self) -> Arc<BodyWatch> {
        self.watch.clone()
    }

    /// Ends the stream with `refusal`; the guest reads `error`.
    fn fail(
        &self,
        refusal: BodyRefusal,
        error: WasiHttpError,
    ) -> Poll<Option<Result<Frame<Bytes>, WasiHttpError>>> {
        self.watch.cut(refusal);
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = WasiHttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, WasiHttpError>>> {
        let this = &mut *self;
        // One lock per frame: the poll, and whether that frame was the last.
        let (polled, ended) = {
            let mut stream = this.watch.stream.lock();
            let Some(body) = stream.body.as_mut() else {
                return match this.watch.refusal(false) {
                    Some(_) => Poll::Ready(Some(Err(WasiHttpError::ConnectionTerminated))),
                    None => Poll::Ready(None),
                };
            };
            let polled = Pin::new(&mut *body).poll_frame(cx);
            match &polled {
                Poll::Pending => stream.waiting = Some(cx.waker().clone()),
                Poll::Ready(None) => stream.body = None,
                Poll::Ready(Some(Ok(_))) if body.is_end_stream() => stream.body = None,
                _ => {}
            }
            (polled, stream.body.is_none())
        };
        let frame = match polled {
            Poll::Pending => {
                this.watch.set(STARVED);
                return Poll::Pending;
            }
            Poll::Ready(None) => {
                this.watch.set(COMPLETE);
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(error))) => {
                return this.fail(BodyRefusal::Unreadable, WasiHttpError::Hyper(error));
            }
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let read = this.watch.read.fetch_add(data.len(), Ordering::Relaxed) + data.len();
            if read > this.limit {
                let error = WasiHttpError::HttpRequestBodySize(Some(read as u64));
                return this.fail(BodyRefusal::TooLarge, error);
            }
            if let Some(budget) = &this.budget
                && !budget.reserve(data.len(), &mut this.held)
            {
                return this.fail(
                    BodyRefusal::OverBudget,
                    WasiHttpError::ConnectionLimitReached,
                );
            }
        }
        this.watch.set(if ended { COMPLETE } else { READING });
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        let stream = self.watch.stream.lock();
        stream.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let stream = self.watch.stream.lock();
        stream
            .body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// A response to a [`Streamed`] request, answered before its body ended: if the body then
/// fails, the response fails too (the connection is reset, or the HTTP/2 stream), so the
/// client never takes an answer to a cut request for a complete one.
pub struct Guarded<B> {
    body: B,
    watch: Arc<BodyWatch>,
}

impl<B> Guarded<B> {
    pub fn new(body: B, watch: Arc<BodyWatch>) -> Self {
        Self { body, watch }
    }
}

impl<B: Body<Data = Bytes, Error = WasiHttpError> + Unpin> Body for Guarded<B> {
    type Data = Bytes;
    type Error = WasiHttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, WasiHttpError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match self.watch.refusal(false) {
            Some(refusal) if !matches!(polled, Poll::Pending) => {
                let cause = format!("the request body was refused: {refusal:?}");
                Poll::Ready(Some(Err(WasiHttpError::InternalError(Some(cause)))))
            }
            _ => polled,
        }
    }

    fn is_end_stream(&self) -> bool {
        // Not before the request body is settled: its end must still be able to fail this.
        self.body.is_end_stream() && self.watch.settled()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
