//! The grants of outbound HTTP: `scheme://host:port` patterns, and which addresses are not
//! public (reached only through a pattern that names them literally).

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
    /// non-public address requires.
    pub(super) fn is_literal(&self) -> bool {
        !self.host.starts_with('*')
    }
}

/// Whether `ip` is anything but a public unicast address: loopback, private (RFC 1918, IPv6
/// unique local `fc00::/7`), shared (`100.64.0.0/10`), link-local, unspecified, documentation,
/// benchmarking, reserved, multicast, broadcast, and every IPv6 form that carries such an IPv4
/// address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`). The IANA special-purpose registries' list, by hand: std's `is_global` is
/// still unstable.
pub(super) fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !is_global_v4(v4),
        IpAddr::V6(v6) => embedded_v4(v6).map_or_else(|| !is_global_v6(v6), |v4| !is_global_v4(v4)),
    }
}

fn is_global_v4(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network", 0.0.0.0 included
        || a == 10
        || a == 127
        || (a == 100 && (b & 0xc0) == 64) // shared address space (carrier-grade NAT)
        || (a == 169 && b == 254)
        || (a == 172 && (b & 0xf0) == 16)
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2)) // IETF protocol assignments, TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relays
        || (a == 198 && (b & 0xfe) == 18) // benchmarking
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224) // multicast, reserved, broadcast
}

/// The IPv4 address an IPv6 address stands for, in the forms that reach one.
fn embedded_v4(ip: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = ip.segments();
    let low = std::net::Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(std::net::Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

fn is_global_v6(ip: std::net::Ipv6Addr) -> bool {
    let s = ip.segments();
    !((s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64
        || (s[0] == 0x100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only
        || (s[0] == 0x2001 && s[1] < 0x200) // IETF protocol assignments (Teredo included)
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
        || (s[0] & 0xfff0) == 0x3ff0 // documentation (3fff::/20)
        || s[0] == 0x5f00 // segment routing
        || (s[0] & 0xfe00) == 0xfc00 // unique local, fd00::/8 included
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00) // multicast
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
        for local in [
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "::",
            "0.0.0.0",
            "0.1.2.3",
            "169.254.169.254",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.1",
            "192.0.2.2",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            // IPv4 loopback and private addresses written as IPv6.
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "64:ff9b:1::1",
            "fc00::1",
            "fd00::2",
            "fdff:ffff::1",
            "2001:db8::1",
            "2001::1",
            "3fff::1",
            "100::1",
            "ff02::1",
        ] {
            assert!(is_local(local.parse().unwrap()), "{local}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "169.253.0.1",
            "11.0.0.1",
            "223.255.255.254",
            "::ffff:93.184.216.34",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert!(!is_local(public.parse().unwrap()), "{public}");
        }
    }
}
