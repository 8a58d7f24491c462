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
//!
//! The name is resolved once ([`resolve`]: the system's resolver, or `[outbound]
//! nameservers`), and the connection goes to the addresses that were checked
//! ([`connect`]), never to a second lookup's.

mod connect;
mod hooks;
mod pattern;
mod resolve;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use wasmtime::component::Linker;

pub use hooks::OutgoingHttp;
pub use pattern::Pattern;

use crate::breaker::Breakers;
use crate::capability::{Capability, InitError, Invocation, PluginSpec, Shared, StateOf};

/// `[outbound]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// The DNS servers destinations are resolved with, over UDP (`"10.0.0.53:53"`, or an
    /// address alone for port 53); empty: the system's resolver.
    pub nameservers: Vec<String>,
}

impl OutboundConfig {
    /// Each nameserver as written, with its address when it is one.
    fn nameservers(&self) -> impl Iterator<Item = (&str, Option<SocketAddr>)> {
        self.nameservers.iter().map(|written| {
            let address = written.parse().ok().or_else(|| {
                written
                    .parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, 53))
            });
            (written.as_str(), address)
        })
    }
}

/// The capability: the breakers every destination gets one of, the resolver and the
/// sender every request goes through.
pub struct Outbound {
    breakers: Arc<Breakers>,
    resolver: Arc<resolve::Resolver>,
    sender: Arc<connect::Sender>,
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
    type Config = OutboundConfig;
    type Grant = OutboundGrant;
    type State = OutgoingHttp;

    fn problems(config: &OutboundConfig) -> Vec<String> {
        config
            .nameservers()
            .filter(|(_, address)| address.is_none())
            .map(|(written, _)| {
                format!(
                    "[outbound] nameservers: {written:?} is not an IP address with an optional port, such as \"10.0.0.53:53\" or \"[2001:db8::53]:53\""
                )
            })
            .collect()
    }

    async fn init(config: &OutboundConfig, shared: &mut Shared<'_>) -> Result<Self, InitError> {
        let nameservers: Vec<SocketAddr> = config.nameservers().filter_map(|(_, a)| a).collect();
        let resolver =
            resolve::Resolver::new(&nameservers).map_err(|e| InitError::new(Self::NAME, e))?;
        Ok(Self {
            breakers: shared.breakers.clone(),
            resolver: Arc::new(resolver),
            sender: Arc::new(connect::Sender::new()),
        })
    }

    /// Nothing to link: `wasi:http` comes with the WASI base, whose views hand the
    /// runtime's `WasiHttpView` this capability's state as its hooks.
    fn link<T: StateOf<OutgoingHttp>>(_linker: &mut Linker<T>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn configure(
        _: &OutboundConfig,
        plugin: &PluginSpec<'_>,
    ) -> Result<OutboundGrant, Vec<String>> {
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
            resolver: self.resolver.clone(),
            sender: self.sender.clone(),
            plugin: invocation.plugin.clone(),
            grants: grant.patterns.clone(),
            call: invocation.call,
        }
    }
}
