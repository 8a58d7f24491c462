//! Outbound HTTP (`wasi:http/outgoing-handler`) as a capability: the runtime links
//! `wasi:http` for every plugin with the WASI base; this capability decides, per request,
//! what is allowed. Denied unless `[plugin.<name>] http` grants the destination.
//!
//! A grant is a `scheme://host:port` pattern (`*` for any port, `*.example.com` for
//! subdomains). The destination is checked against the patterns and then against the
//! addresses it resolves to: a non-public address (loopback, private, link-local, cloud
//! metadata endpoints, and their IPv6 spellings) is reached only when a pattern names that
//! host literally. Each
//! destination has its own circuit breaker (`http:<scheme>://<host>:<port>`), a call never
//! outlives the invocation's deadline, and it carries the invocation's W3C `traceparent`.

mod hooks;
mod pattern;

use std::sync::Arc;

use wasmtime::component::Linker;

pub use hooks::OutgoingHttp;
pub use pattern::Pattern;

use crate::breaker::Breakers;
use crate::capability::{
    Capability, InitError, Invocation, NoSection, PluginSpec, Shared, StateOf,
};

/// The capability: the breakers every destination gets one of.
pub struct Outbound {
    breakers: Arc<Breakers>,
}

/// The destinations one plugin may call, parsed.
#[derive(Debug, Clone, Default)]
pub struct OutboundGrant {
    patterns: Arc<[Pattern]>,
    /// As written, for the admin API.
    written: Vec<String>,
}

impl serde::Serialize for OutboundGrant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("http", &self.written)?;
        map.end()
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Written {
    /// Outbound HTTP destinations it may call, as `scheme://host:port` (`*` for any port).
    http: Vec<String>,
}

impl Capability for Outbound {
    const NAME: &'static str = "http";
    const GRANT_KEYS: &'static [&'static str] = &["http"];
    type Config = NoSection;
    type Grant = OutboundGrant;
    type State = OutgoingHttp;

    async fn init(_: &NoSection, shared: &mut Shared<'_>) -> Result<Self, InitError> {
        Ok(Self {
            breakers: shared.breakers.clone(),
        })
    }

    /// Nothing to link: `wasi:http` comes with the WASI base, whose views hand the
    /// runtime's `WasiHttpView` this capability's state as its hooks.
    fn link<T: StateOf<OutgoingHttp>>(_linker: &mut Linker<T>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn configure(_: &NoSection, plugin: &PluginSpec<'_>) -> Result<OutboundGrant, Vec<String>> {
        let Written { http } = plugin.grant(Self::GRANT_KEYS)?;
        let mut problems = Vec::new();
        let mut patterns = Vec::new();
        for written in &http {
            match Pattern::parse(written) {
                Ok(pattern) => patterns.push(pattern),
                Err(e) => problems.push(format!("[plugin.{}] http: {written:?}: {e}", plugin.name)),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(OutboundGrant {
            patterns: patterns.into(),
            written: http,
        })
    }

    fn prepare(&self, grant: &OutboundGrant, invocation: &Invocation<'_>) -> OutgoingHttp {
        OutgoingHttp {
            breakers: self.breakers.clone(),
            plugin: invocation.plugin.clone(),
            grants: grant.patterns.clone(),
            call: invocation.call,
        }
    }
}
