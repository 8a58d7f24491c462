//! The access log (`[telemetry] access_log = "json"`): one line per request, as nginx,
//! Envoy or Kratos' logging middleware write one, written when the response's last byte has
//! gone out (or the client went away), so its size and duration are the real ones.
//!
//! The line is a `tracing` event of target `micro_api::access`, so it goes to stdout and
//! the rotating files like every other line, whatever `log_level` says. It holds the path
//! without its query (a query may carry a secret) and never a body or a header value.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Method;
use hyper::body::{Body, Frame, SizeHint};

use super::request_body::BodyWatch;
use crate::telemetry::ACCESS_LOG_TARGET;

/// What the line says of one request, filled in as the request goes through the gateway.
pub struct AccessRecord {
    started: Instant,
    client: Option<SocketAddr>,
    method: Method,
    route: Option<Arc<str>>,
    path: String,
    trace_id: String,
    /// The plugin and version that answered, once the request reached one.
    pub plugin: Option<(Arc<str>, Arc<str>)>,
    /// Request body bytes read, for a body read whole.
    pub bytes_in: usize,
    /// A streamed body's progress, read when the line is written (the plugin may read on
    /// after its answer began).
    pub streamed_in: Option<Arc<BodyWatch>>,
    status: u16,
    bytes_out: u64,
}

impl AccessRecord {
    pub fn new(
        started: Instant,
        client: Option<SocketAddr>,
        method: &Method,
        route: Option<&str>,
        path: &str,
        trace_id: String,
    ) -> Self {
        Self {
            started,
            client,
            method: method.clone(),
            route: route.map(Arc::from),
            path: path.to_string(),
            trace_id,
            plugin: None,
            bytes_in: 0,
            streamed_in: None,
            status: 0,
            bytes_out: 0,
        }
    }

    /// Wraps the response body, which writes the line when it ends or is dropped.
    /// `declared` is the response's `Content-Length`, which hyper goes by.
    pub fn around<B: Body>(mut self, status: u16, declared: Option<u64>, body: B) -> Logged<B> {
        self.status = status;
        let length = body.size_hint().exact().or(declared);
        Logged {
            length: if body.is_end_stream() {
                Some(0)
            } else {
                length
            },
            body,
            record: Some(self),
        }
    }

    fn write(&self, complete: bool) {
        let (plugin, version) = match &self.plugin {
            Some((plugin, version)) => (Some(&**plugin), Some(&**version)),
            None => (None, None),
        };
        tracing::info!(
            target: ACCESS_LOG_TARGET,
            client = self.client.map(|c| c.ip().to_string()),
            method = %self.method,
            route = self.route.as_deref(),
            path = %self.path,
            status = self.status,
            bytes_in = self.streamed_in.as_ref().map_or(self.bytes_in, |w| w.bytes_read()),
            bytes_out = self.bytes_out,
            duration_us = self.started.elapsed().as_micros() as u64,
            plugin,
            version,
            trace_id = %self.trace_id,
            complete,
            "access"
        );
    }
}

/// A response body that counts what it sends and writes its access line at its end.
pub struct Logged<B> {
    body: B,
    record: Option<AccessRecord>,
    /// Its length when known: hyper stops polling a body once that much is out, and sends
    /// an empty one without polling it at all.
    length: Option<u64>,
}

impl<B> Logged<B> {
    fn finish(&mut self, complete: bool) {
        if let Some(record) = self.record.take() {
            record.write(complete);
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Logged<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let length = self.length;
                if let (Some(data), Some(record)) = (frame.data_ref(), self.record.as_mut()) {
                    record.bytes_out += data.len() as u64;
                    if Some(record.bytes_out) == length {
                        self.finish(true);
                    }
                }
                if self.body.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A body never polled to its end (a client gone) still gets its line; an empty one hyper
/// sent without polling it was sent whole.
impl<B> Drop for Logged<B> {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            record.write(Some(record.bytes_out) == self.length);
        }
    }
}
