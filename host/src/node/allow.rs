//! `[cluster] allow`: which services and methods each caller may call on this node's rpc
//! listener, so that holding the cluster secret (or a node certificate) is not a licence
//! to call everything (`auth.MakeAccessToken` mints tokens).
//!
//! A caller's names are the listed names its TLS certificate is valid for (checked as a
//! server name is: a DNS name among its subject alternative names); every caller is also
//! `"*"`. Without TLS a caller is `"*"` only.

use std::collections::BTreeMap;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::ParsedCertificate;

/// The caller name every caller has.
pub const ANY_CALLER: &str = "*";

/// One entry of a caller's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `"*"`: everything.
    All,
    /// `"user"`: every method of a service.
    Service(String),
    /// `"user.GetUserByName"`: one method.
    Method(String, String),
}

impl Pattern {
    /// `None` for what is none of the three shapes.
    pub fn parse(pattern: &str) -> Option<Self> {
        let part = |s: &str| !s.is_empty() && !s.contains(['*', '.', '/']);
        match pattern.split_once('.') {
            _ if pattern == "*" => Some(Self::All),
            None if part(pattern) => Some(Self::Service(pattern.into())),
            Some((service, method)) if part(service) && part(method) => {
                Some(Self::Method(service.into(), method.into()))
            }
            _ => None,
        }
    }

    fn covers(&self, service: &str, method: &str) -> bool {
        match self {
            Self::All => true,
            Self::Service(s) => s == service,
            Self::Method(s, m) => s == service && m == method,
        }
    }
}

/// A caller, as the rpc listener logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[cluster] allow`, parsed once.
pub struct Permissions {
    /// Names other than `"*"`, with their server-name form, and what each may call.
    named: Vec<(String, ServerName<'static>, Vec<Pattern>)>,
    any: Vec<Pattern>,
}

impl Permissions {
    /// From a validated `allow` (entries that do not parse are left out).
    pub fn new(allow: &BTreeMap<String, Vec<String>>) -> Self {
        let patterns = |list: &[String]| list.iter().filter_map(|p| Pattern::parse(p)).collect();
        let named = allow
            .iter()
            .filter(|(caller, _)| caller.as_str() != ANY_CALLER)
            .filter_map(|(caller, list)| {
                let name = ServerName::try_from(caller.clone()).ok()?;
                Some((caller.clone(), name, patterns(list)))
            })
            .collect();
        let any = allow.get(ANY_CALLER).map_or_else(Vec::new, |l| patterns(l));
        Self { named, any }
    }

    /// Whether the caller whose verified TLS certificate is `cert` (none without TLS) may
    /// call `service.method`, and who it is: its listed names, or `"*"`.
    pub fn check(
        &self,
        cert: Option<&CertificateDer<'_>>,
        service: &str,
        method: &str,
    ) -> (bool, Caller) {
        let parsed = cert.and_then(|c| ParsedCertificate::try_from(c).ok());
        let names: Vec<&(String, ServerName<'static>, Vec<Pattern>)> = match &parsed {
            Some(parsed) => self
                .named
                .iter()
                .filter(|(_, name, _)| rustls::client::verify_server_name(parsed, name).is_ok())
                .collect(),
            None => Vec::new(),
        };
        let allowed = self
            .any
            .iter()
            .chain(names.iter().flat_map(|(_, _, patterns)| patterns))
            .any(|p| p.covers(service, method));
        let caller = match names.as_slice() {
            [] => ANY_CALLER.to_string(),
            names => names
                .iter()
                .map(|(caller, _, _)| caller.as_str())
                .collect::<Vec<_>>()
                .join(","),
        };
        (allowed, Caller(caller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_all_a_service_or_a_method() {
        assert_eq!(Pattern::parse("*"), Some(Pattern::All));
        assert_eq!(
            Pattern::parse("user"),
            Some(Pattern::Service("user".into()))
        );
        assert_eq!(
            Pattern::parse("user.GetUserByName"),
            Some(Pattern::Method("user".into(), "GetUserByName".into()))
        );
        for bad in ["", "user.", ".x", "user.*", "a.b.c", "us/er", "*.x"] {
            assert_eq!(Pattern::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn without_a_certificate_a_caller_has_what_any_caller_has() {
        let allow = BTreeMap::from([
            ("*".to_string(), vec!["user.GetUserByName".to_string()]),
            (
                "user-api-node".to_string(),
                vec!["user".to_string(), "auth.MakeAccessToken".to_string()],
            ),
        ]);
        let permissions = Permissions::new(&allow);
        let check = |service, method| permissions.check(None, service, method);
        assert_eq!(check("user", "GetUserByName"), (true, Caller("*".into())));
        assert!(!check("user", "CheckPassword").0);
        assert!(!check("auth", "MakeAccessToken").0);
        let everything =
            Permissions::new(&BTreeMap::from([("*".to_string(), vec!["*".to_string()])]));
        assert!(everything.check(None, "auth", "MakeAccessToken").0);
        assert!(
            !Permissions::new(&BTreeMap::new())
                .check(None, "user", "x")
                .0
        );
    }
}
