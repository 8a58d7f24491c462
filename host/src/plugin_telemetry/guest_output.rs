//! A plugin's stdout and stderr, line by line, into the host log. A Rust plugin's panic
//! message arrives here (on stderr), so it reaches the log with the plugin's name.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Longest line kept; the rest of a longer line is cut so a guest cannot flood the log.
const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One stream of one instance. Every handle the guest takes on it (some guests take a fresh
/// one per write) writes into the same line buffer, so a line is one record however it was
/// written; what is left of a line without its newline goes out when the instance ends.
#[derive(Clone)]
pub struct GuestOutput(Arc<Lines>);

struct Lines {
    plugin: Arc<str>,
    version: Arc<str>,
    stream: Stream,
    span: tracing::Span,
    line: Mutex<Vec<u8>>,
}

impl GuestOutput {
    pub fn new(plugin: Arc<str>, version: Arc<str>, stream: Stream, span: tracing::Span) -> Self {
        Self(Arc::new(Lines {
            plugin,
            version,
            stream,
            span,
            line: Mutex::default(),
        }))
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl Lines {
    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let _entered = self.span.enter();
        match self.stream {
            Stream::Stdout => {
                tracing::info!(target: "plugin", plugin = %self.plugin, version = %self.version, stream = "stdout", "{text}")
            }
            Stream::Stderr => {
                tracing::warn!(target: "plugin", plugin = %self.plugin, version = %self.version, stream = "stderr", "{text}")
            }
        }
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let lines = &self.0;
        let mut line = lines.line.lock();
        for &byte in buf {
            if byte == b'\n' {
                // Empty lines too: a guest's blank line is part of what it printed.
                lines.emit(&line);
                line.clear();
            } else if line.len() < MAX_LINE {
                line.push(byte);
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The instance is gone (its store and every handle dropped): a last line without its
/// newline still reaches the log.
impl Drop for Lines {
    fn drop(&mut self) {
        let line = std::mem::take(self.line.get_mut());
        if !line.is_empty() {
            self.emit(&line);
        }
    }
}
