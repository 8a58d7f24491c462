//! W3C trace context (`traceparent`), carried across every hop: taken from the incoming
//! HTTP request or started there, handed to each invocation, sent on every rpc to another
//! node and read back there, and recorded on the request's span so every log line of the
//! request, on every node, carries the trace id.
//!
//! Parsed by hand: the header is one fixed-width line, and reading it needs no SDK. When
//! spans are exported, [`TraceContext::accept`] makes the caller's context the OpenTelemetry
//! parent of the request's span and [`TraceContext::outgoing`] sends the current span as the
//! callee's parent, so logs, exported spans and every hop share one trace id.

use std::fmt;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    /// The caller's span, the parent of what runs here.
    pub parent_id: u64,
    pub sampled: bool,
}

impl TraceContext {
    /// A new trace, for a request that arrived without one.
    pub fn new_root() -> Self {
        Self {
            trace_id: rand::random::<u128>().max(1),
            parent_id: rand::random::<u64>().max(1),
            sampled: true,
        }
    }

    /// The context to send to a callee: the same trace, a new parent span.
    pub fn child(&self) -> Self {
        Self {
            parent_id: rand::random::<u64>().max(1),
            ..*self
        }
    }

    /// Reads a `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`); invalid ones (all-zero
    /// ids, other lengths, bad hex) are ignored, as the specification says.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || trace.len() != 32 || parent.len() != 16 {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|&t| t != 0)?;
        let parent_id = u64::from_str_radix(parent, 16).ok().filter(|&p| p != 0)?;
        let flags = u8::from_str_radix(flags.get(..2)?, 16).ok()?;
        Some(Self {
            trace_id,
            parent_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The trace of a request that arrived with `incoming` (its `traceparent`, if valid)
    /// and is handled in `span` (not entered yet). Exporting, `span` becomes the caller's
    /// child (or a new root, sampled at the configured ratio); else the ids are ours.
    pub fn accept(span: &tracing::Span, incoming: Option<Self>) -> Self {
        if !super::exporting() {
            return incoming.unwrap_or_else(Self::new_root);
        }
        if let Some(caller) = incoming {
            let remote = SpanContext::new(
                TraceId::from(caller.trace_id),
                SpanId::from(caller.parent_id),
                if caller.sampled {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::default()
                },
                true,
                TraceState::default(),
            );
            let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
        }
        Self::of(span).or(incoming).unwrap_or_else(Self::new_root)
    }

    /// The context to send to a callee from `span` (the caller's client span): exporting,
    /// that span is the callee's parent; else a new parent id in the same trace.
    pub fn outgoing(&self, span: &tracing::Span) -> Self {
        if super::exporting()
            && let Some(context) = Self::of(span)
        {
            return context;
        }
        self.child()
    }

    /// The OpenTelemetry ids of `span`, if it has any.
    fn of(span: &tracing::Span) -> Option<Self> {
        let context = span.context();
        let otel = context.span();
        let ids = otel.span_context();
        ids.is_valid().then(|| Self {
            trace_id: u128::from_be_bytes(ids.trace_id().to_bytes()),
            parent_id: u64::from_be_bytes(ids.span_id().to_bytes()),
            sampled: ids.is_sampled(),
        })
    }

    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl fmt::Display for TraceContext {
    /// The `traceparent` header value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.parent_id,
            u8::from(self.sampled)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_children() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceContext::parse(header).unwrap();
        assert_eq!(parsed.to_string(), header);
        let child = parsed.child();
        assert_eq!(child.trace_id, parsed.trace_id);
        assert_ne!(child.parent_id, parsed.parent_id);
    }

    #[test]
    fn invalid_headers_are_ignored() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }
}
