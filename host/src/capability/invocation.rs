//! What one instance is prepared for: which plugin, and where it stands in its call chain.
//! Small on purpose: a capability's `prepare` sees this and its own grant, never the host.

use std::sync::Arc;
use std::time::Instant;

use crate::telemetry::TraceContext;

/// Where an invocation stands in its call chain.
#[derive(Debug, Clone, Copy)]
pub struct CallContext {
    /// When the whole chain must be done: an rpc callee inherits what is left of it.
    pub deadline: Instant,
    /// How many rpc hops led here (0 for an HTTP request or a message).
    pub depth: u32,
    /// The W3C trace this invocation belongs to.
    pub trace: TraceContext,
}

/// The instance being prepared.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// The plugin's name.
    pub plugin: &'a Arc<str>,
    /// Its version (content hash).
    pub version: &'a Arc<str>,
    pub call: CallContext,
}
