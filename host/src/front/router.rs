//! Routes from `[[route]]`: a path pattern, the methods it accepts, and the plugin behind it.
//! Patterns are literal segments, `{name}` for one segment, and `{*rest}` for the rest.
//! Matching a path also yields what it gave each parameter ([`Params`]), which the front
//! hands the plugin (see `micro_api_contracts::headers`).

use http::Method;
use micro_api_contracts::headers::is_param_name;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A path such as `/user/login` or `/hello/{name}`; `/{*rest}` matches the remainder.
    pub path: String,
    /// Allowed methods; empty: any.
    #[serde(default)]
    pub methods: Vec<String>,
    pub plugin: String,
    /// `"required"`: the host verifies a bearer token before the plugin runs.
    #[serde(default)]
    pub auth: RouteAuth,
}

/// What a route asks of its callers.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RouteAuth {
    /// Anyone may call it (the plugin may still check credentials itself).
    #[default]
    None,
    /// A valid access token (`Authorization: Bearer`), else 401; the plugin gets its claims.
    Required,
}

/// Every problem of the `[[route]]` table, each with its fix.
pub fn problems(routes: &[RouteConfig]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, r) in routes.iter().enumerate() {
        let at = format!("[[route]] #{} ({})", i + 1, r.path);
        if let Err(e) = PathPattern::parse(&r.path) {
            problems.push(format!("{at}: {e}"));
        }
        for m in &r.methods {
            if Method::from_bytes(m.as_bytes()).is_err() {
                problems.push(format!("{at}: {m:?} is not an HTTP method"));
            }
        }
        if r.plugin.is_empty() {
            problems.push(format!("{at}: plugin = \"<name>\" is missing"));
        }
        if !seen.insert(&r.path) {
            problems.push(format!(
                "{at}: the path is routed twice; merge the two [[route]] entries"
            ));
        }
    }
    problems
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: one non-empty segment.
    Param(String),
    /// `{*name}`: the rest of the path, maybe empty.
    Rest(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern(Vec<Segment>);

/// What a matched path gave a route's parameters: `(name, raw value)` in the pattern's
/// order. A value is the segment as it is in the path, still percent-encoded; a `{*rest}`
/// value is the rest of the path without its leading `/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params<'a>(pub Vec<(&'a str, String)>);

impl PathPattern {
    pub fn parse(path: &str) -> Result<Self, String> {
        let Some(rest) = path.strip_prefix('/') else {
            return Err("a route path starts with /".into());
        };
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let segment =
                if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    if let Some(rest_name) = name.strip_prefix('*') {
                        if i + 1 != parts.len() || rest_name.is_empty() {
                            return Err("{*name} must name the last segment".into());
                        }
                        Segment::Rest(param_name(rest_name)?)
                    } else if name.is_empty() || name.contains(['{', '}']) {
                        return Err(format!("bad parameter {part:?}"));
                    } else {
                        Segment::Param(param_name(name)?)
                    }
                } else if part.contains(['{', '}']) {
                    return Err(format!(
                        "bad segment {part:?}: a parameter is a whole segment"
                    ));
                } else {
                    Segment::Literal((*part).to_string())
                };
            segments.push(segment);
        }
        Ok(Self(segments))
    }

    pub fn matches(&self, path: &str) -> bool {
        self.captures(path).is_some()
    }

    /// What `path` gives the parameters, if it matches.
    pub fn captures(&self, path: &str) -> Option<Params<'_>> {
        if self.0.is_empty() {
            return (path == "/" || path.is_empty()).then(Params::default);
        }
        let mut params = Params::default();
        // What is left of the path after the segments matched so far; `None` once the last
        // segment is taken.
        let mut left = Some(path.strip_prefix('/').unwrap_or(path));
        for segment in &self.0 {
            if let Segment::Rest(name) = segment {
                params
                    .0
                    .push((name.as_str(), left.unwrap_or_default().to_owned()));
                return Some(params);
            }
            let current = left?;
            let (part, after) = match current.split_once('/') {
                Some((part, after)) => (part, Some(after)),
                None => (current, None),
            };
            left = after;
            match segment {
                Segment::Literal(literal) if part == literal => {}
                Segment::Param(name) if !part.is_empty() => {
                    params.0.push((name.as_str(), part.to_owned()));
                }
                _ => return None,
            }
        }
        left.is_none().then_some(params)
    }
}

/// A parameter's name, if it can name the header it travels in.
fn param_name(name: &str) -> Result<String, String> {
    if is_param_name(name) {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "bad parameter name {name:?}: use ASCII letters, digits, `_` and `-`"
        ))
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    /// The pattern as configured (`/user/{id}`): the route's name in spans and metrics.
    pub path: String,
    pattern: PathPattern,
    methods: Vec<Method>,
    pub plugin: String,
    pub auth: RouteAuth,
}

impl Route {
    /// The methods it accepts (empty: any).
    pub fn methods(&self) -> Vec<&str> {
        self.methods.iter().map(Method::as_str).collect()
    }
}

/// What the router decided for a request.
#[derive(Debug)]
pub enum Routed<'a> {
    /// The route, and what the path gave its parameters.
    Route(&'a Route, Params<'a>),
    /// The path is routed, not for this method: these are the allowed ones.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds the table from config already validated by `Config::validate`.
    pub fn new(routes: &[RouteConfig]) -> Self {
        let routes = routes
            .iter()
            .filter_map(|r| {
                Some(Route {
                    path: r.path.clone(),
                    pattern: PathPattern::parse(&r.path).ok()?,
                    methods: r
                        .methods
                        .iter()
                        .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                        .collect(),
                    plugin: r.plugin.clone(),
                    auth: r.auth,
                })
            })
            .collect();
        Self { routes }
    }

    /// The routes that `plugin` serves.
    pub fn of_plugin<'a>(&'a self, plugin: &'a str) -> impl Iterator<Item = &'a Route> {
        self.routes.iter().filter(move |r| r.plugin == plugin)
    }

    pub fn route(&self, method: &Method, path: &str) -> Routed<'_> {
        let mut allowed = Vec::new();
        for (route, params) in self
            .routes
            .iter()
            .filter_map(|r| Some((r, r.pattern.captures(path)?)))
        {
            if route.methods.is_empty() || route.methods.contains(method) {
                return Routed::Route(route, params);
            }
            allowed.extend(route.methods.iter().cloned());
        }
        if allowed.is_empty() {
            Routed::NotFound
        } else {
            Routed::MethodNotAllowed(allowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let route = |path: &str, methods: &[&str], plugin: &str| RouteConfig {
            path: path.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            plugin: plugin.into(),
            auth: if path == "/user/profile" {
                RouteAuth::Required
            } else {
                RouteAuth::None
            },
        };
        Router::new(&[
            route("/user/login", &["POST"], "user-api"),
            route("/user/profile", &["GET"], "user-api"),
            route("/hello/{name}", &[], "hello"),
            route("/files/{*rest}", &["GET"], "files"),
        ])
    }

    /// What `route` decided, as comparable text: `plugin (auth)`, `405 [methods]` or `404`.
    fn decided(r: &Router, method: Method, path: &str) -> String {
        match r.route(&method, path) {
            Routed::Route(route, _) => format!("{} ({:?})", route.plugin, route.auth),
            Routed::MethodNotAllowed(allowed) => format!("405 {allowed:?}"),
            Routed::NotFound => "404".into(),
        }
    }

    #[test]
    fn routes_by_path_and_method() {
        let r = router();
        let cases = [
            (Method::POST, "/user/login", "user-api (None)"),
            (Method::GET, "/user/login", "405 [POST]"),
            (Method::GET, "/user/profile", "user-api (Required)"),
            (Method::GET, "/hello/world", "hello (None)"),
            (Method::GET, "/hello/", "404"),
            (Method::GET, "/hello/a/b", "404"),
            (Method::GET, "/files/a/b/c", "files (None)"),
            (Method::GET, "/nope", "404"),
            (Method::POST, "/user/login/x", "404"),
        ];
        for (method, path, expected) in cases {
            assert_eq!(decided(&r, method, path), expected, "{path}");
        }
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(PathPattern::parse("user").is_err());
        assert!(PathPattern::parse("/a/{*rest}/b").is_err());
        assert!(PathPattern::parse("/a/x{id}").is_err());
        assert!(PathPattern::parse("/a/{user id}").is_err());
        assert!(PathPattern::parse("/a/{*é}").is_err());
        assert!(PathPattern::parse("/").is_ok());
    }

    #[test]
    fn matching_yields_the_raw_parameters() {
        let captured = |pattern: &str, path: &str| {
            let pattern = PathPattern::parse(pattern).unwrap();
            pattern.captures(path).map(|Params(params)| {
                params
                    .into_iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>()
            })
        };
        let some = |params: &[&str]| Some(params.iter().map(|p| p.to_string()).collect());
        assert_eq!(
            captured("/hello/{name}", "/hello/Jos%C3%A9"),
            some(&["name=Jos%C3%A9"])
        );
        assert_eq!(
            captured("/a/{x}/b/{y}", "/a/1/b/%2F"),
            some(&["x=1", "y=%2F"])
        );
        assert_eq!(
            captured("/files/{*rest}", "/files/a/b%20c/"),
            some(&["rest=a/b%20c/"])
        );
        assert_eq!(captured("/files/{*rest}", "/files/"), some(&["rest="]));
        assert_eq!(captured("/files/{*rest}", "/files"), some(&["rest="]));
        assert_eq!(captured("/{*all}", "/"), some(&["all="]));
        assert_eq!(captured("/", "/"), some(&[]));
        assert_eq!(captured("/hello/{name}", "/hello/"), None);
        assert_eq!(captured("/hello/{name}", "/hello/a/b"), None);
        assert_eq!(captured("/hello/{name}", "/hello"), None);
        assert_eq!(captured("/a", "/a/"), None);
        assert_eq!(captured("/a/", "/a/"), some(&[]));
    }
}
