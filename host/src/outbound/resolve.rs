//! Where a destination's name is resolved, once per outgoing request: the addresses it
//! answers are both the ones checked against the grants and the ones connected to (see
//! `connect`), so a name cannot answer one thing to the check and another to the connect.
//!
//! The system's resolver by default; with `[outbound] nameservers`, hickory-resolver
//! asking only those servers (over UDP), so an operator can pin the DNS that plugins'
//! destinations are looked up in.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use wasmtime_wasi_http::Error;

/// Resolves destination names to the addresses outbound HTTP may connect to.
pub enum Resolver {
    /// The system's resolver (`getaddrinfo`, through tokio).
    System,
    /// Only the nameservers of `[outbound] nameservers`.
    Nameservers(Box<TokioResolver>),
}

impl Resolver {
    /// The system's resolver when `nameservers` is empty, else one asking only them.
    pub fn new(nameservers: &[SocketAddr]) -> Result<Self, NetError> {
        if nameservers.is_empty() {
            return Ok(Self::System);
        }
        let servers = nameservers
            .iter()
            .map(|server| {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![udp])
            })
            .collect();
        let resolver = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
        .build()?;
        Ok(Self::Nameservers(Box::new(resolver)))
    }

    /// The addresses of `host` (a name, or an IP address, IPv6 in brackets or not) at
    /// `port`; an address is answered as it is, without asking anyone.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
        let host = host.trim_matches(['[', ']']);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let addresses: Vec<SocketAddr> = match self {
            Self::System => tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| lookup_failed())?
                .collect(),
            Self::Nameservers(resolver) => resolver
                .lookup_ip(host)
                .await
                .map_err(|e| match e {
                    NetError::Timeout => Error::DnsTimeout,
                    _ => lookup_failed(),
                })?
                .iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
        };
        if addresses.is_empty() {
            return Err(lookup_failed());
        }
        Ok(addresses)
    }
}

fn lookup_failed() -> Error {
    Error::DnsError {
        rcode: Some("lookup failed".into()),
        info_code: None,
    }
}
