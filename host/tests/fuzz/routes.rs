//! Fuzz target: route patterns, parsed from hostile text, and matched against paths
//! generated to match them (or not).

use micro_api::front::router::{PathPattern, RouteAuth, RouteConfig, Routed, Router};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::{fuzz, glued};

#[derive(Debug, Clone)]
pub(crate) enum Segment {
    Literal(String),
    Param(String),
}

/// A valid pattern, a path it matches, and one it does not (none for `/{*rest}`, which
/// matches every path).
pub(crate) fn pattern_and_paths() -> impl Strategy<Value = (String, String, Option<String>)> {
    let segment = prop_oneof![
        "[a-z0-9._~-]{1,6}".prop_map(Segment::Literal),
        "[a-z]{1,4}".prop_map(Segment::Param),
    ];
    (
        proptest::collection::vec(segment, 0..6),
        any::<bool>(),
        proptest::collection::vec("[^/]{1,6}", 6),
        "(/[^/]{0,4}){0,3}",
    )
        .prop_map(|(segments, rest, values, tail)| {
            let mut pattern = String::new();
            let mut path = String::new();
            for (segment, value) in segments.iter().zip(&values) {
                match segment {
                    Segment::Literal(l) => {
                        pattern.push_str(&format!("/{l}"));
                        path.push_str(&format!("/{l}"));
                    }
                    Segment::Param(p) => {
                        pattern.push_str(&format!("/{{{p}}}"));
                        path.push_str(&format!("/{value}"));
                    }
                }
            }
            let mut other = Some(format!("{path}/extra"));
            if rest {
                pattern.push_str("/{*rest}");
                // Only a literal segment can make a path miss a pattern ending in a rest.
                other = segments
                    .iter()
                    .position(|s| matches!(s, Segment::Literal(_)))
                    .map(|i| {
                        let mut parts: Vec<String> = path.split('/').map(str::to_owned).collect();
                        parts[i + 1].push('~');
                        parts.join("/")
                    });
                path.push_str(&tail);
            }
            if pattern.is_empty() {
                pattern.push('/');
                path.push('/');
            }
            (pattern, path, other)
        })
}

#[test]
fn route_patterns() {
    fuzz(
        "route pattern parser",
        4_000,
        (
            glued(
                &["/", "{", "}", "*", "{*", "{a}", "{*r}", "a", "//", "%2F"],
                12,
            ),
            "\\PC{0,40}",
        ),
        |(pattern, path)| {
            let pattern = String::from_utf8_lossy(&pattern).into_owned();
            if let Ok(parsed) = PathPattern::parse(&pattern) {
                parsed.matches(&path);
                let router = Router::new(&[RouteConfig {
                    path: pattern.clone(),
                    methods: vec!["GET".into()],
                    plugin: "p".into(),
                    auth: RouteAuth::None,
                }]);
                let _ = router.route(&http::Method::POST, &path);
            }
            Ok(())
        },
    );
    fuzz(
        "route matcher",
        4_000,
        pattern_and_paths(),
        |(pattern, path, other)| {
            let parsed = PathPattern::parse(&pattern).map_err(TestCaseError::fail)?;
            prop_assert!(parsed.matches(&path), "{pattern} should match {path}");
            if let Some(other) = &other {
                prop_assert!(!parsed.matches(other), "{pattern} should not match {other}");
            }
            let router = Router::new(&[RouteConfig {
                path: pattern.clone(),
                methods: vec![],
                plugin: "p".into(),
                auth: RouteAuth::Required,
            }]);
            prop_assert!(
                matches!(router.route(&http::Method::GET, &path), Routed::Route(r, _) if r.auth == RouteAuth::Required)
            );
            Ok(())
        },
    );
}
