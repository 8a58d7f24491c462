//! The grants of outbound HTTP: `scheme://host:port` patterns, and which addresses count
//! as the host's own (reached only through a pattern that names them literally).

use std::net::IpAddr;

/// One `scheme://host:port` grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    scheme: String,
    host: String,
    /// `None` matches any port.
    port: Option<u16>,
}

impl Pattern {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let (scheme, rest) = pattern
            .split_once("://")
            .ok_or("expected scheme://host:port")?;
        if scheme != "http" && scheme != "https" {
            return Err(format!("scheme {scheme:?} is not http or https"));
        }
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or("expected scheme://host:port (use :* for any port)")?;
        if host.is_empty() || host.contains('/') {
            return Err(format!("bad host {host:?}"));
        }
        let port = match port {
            "*" => None,
            p => Some(p.parse().map_err(|_| format!("bad port {p:?}"))?),
        };
        Ok(Self {
            scheme: scheme.into(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    pub(super) fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host_matches = match self.host.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => self.host == host,
        };
        self.scheme == scheme && host_matches && self.port.is_none_or(|p| p == port)
    }

    /// Whether this grant names its host literally (no wildcard), which is what reaching a
    /// loopback or link-local address requires.
    pub(super) fn is_literal(&self) -> bool {
        !self.host.starts_with('*')
    }
}

pub(super) fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = Pattern::parse("https://*.example.com:*").unwrap();
        assert!(p.matches("https", "api.example.com", 8443));
        assert!(!p.matches("https", "example.com", 443));
        assert!(!p.matches("http", "api.example.com", 80));
        assert!(!p.is_literal());
        let p = Pattern::parse("http://127.0.0.1:9000").unwrap();
        assert!(p.matches("http", "127.0.0.1", 9000));
        assert!(!p.matches("http", "127.0.0.1", 9001));
        assert!(p.is_literal());
        for bad in [
            "127.0.0.1:80",
            "ftp://x:1",
            "http://x",
            "http://:80",
            "http://x:port",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn local_addresses() {
        for local in ["127.0.0.1", "::1", "169.254.169.254", "fe80::1", "0.0.0.0"] {
            assert!(is_local(local.parse().unwrap()), "{local}");
        }
        assert!(!is_local("93.184.216.34".parse().unwrap()));
    }
}
