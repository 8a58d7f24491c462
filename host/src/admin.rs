//! The admin listener (127.0.0.1:9090 by default, never the public port): health, plugins
//! and breakers as JSON, the front door's counters, and the plugin lifecycle's controls
//! (reload, rollback).
//!
//! `GET /metrics` is the Prometheus text of [`crate::telemetry::metrics`]; `GET /admin/` is
//! a self-contained page drawing the JSON endpoints live.
//!
//! With `[admin] token` set, every endpoint but the probes `/admin/health/live` and
//! `/admin/health/ready` (orchestrators cannot send a token) and the page itself (static, it
//! holds no data: its script asks for the token) asks for `Authorization: Bearer <token>`,
//! compared in constant time; the token is never logged. A listener off loopback without a
//! token is refused at start (config validation).
//!
//! Before any of that, a request a browser page may have sent on someone's behalf is
//! refused with 403: a `Host` that is not an IP address, `localhost` or one of `[admin]
//! allowed_hosts` (a DNS-rebound page names its own domain), and a state-changing request
//! (not GET/HEAD) whose `Origin` is not the listener's own or whose `Sec-Fetch-Site` says
//! another site (a cross-site form post needs no CORS preflight).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::config::Config;
use crate::front::{ClientAddr, auth, error};
use crate::host::Host;
use crate::plugins::RollbackError;
use crate::settings::{Secret, SecretDigest};

/// Answers one admin request. The token is the one the host started with (`[admin]` is a
/// section a restart applies).
pub async fn handle(host: Arc<Host>, request: Request<Incoming>) -> Response<HyperOutgoingBody> {
    let config = host.config();
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let Some(reason) = foreign_page(&request, &config.admin.allowed_hosts) {
        if let Some(total) = host.front_metrics().admin_unauthorized.hit() {
            tracing::warn!(%path, total, reason, "403: admin request from a foreign page");
        }
        return error::error(StatusCode::FORBIDDEN, "forbidden", reason);
    }
    let open_to_all =
        matches!(segments.as_slice(), ["admin", "health", "live" | "ready"]) || path == "/admin/";
    let with_token = config
        .admin
        .token
        .as_ref()
        .is_none_or(|token| authorized(request.headers(), token));
    if !open_to_all && !with_token {
        if let Some(total) = host.front_metrics().admin_unauthorized.hit() {
            let peer = request.extensions().get::<ClientAddr>().map(|c| c.0);
            tracing::warn!(%path, ?peer, total, "401: admin request without the admin token");
        }
        let mut response = error::error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin token is required",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    match (&method, segments.as_slice()) {
        (&Method::GET, ["admin"]) if path.ends_with('/') => page(),
        (&Method::GET, ["metrics"]) => {
            let mut response = Response::new(error::full(host.metrics().into_bytes()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        (&Method::GET, ["admin", "health", "live"]) => {
            error::json(StatusCode::OK, &json!({ "status": "live" }))
        }
        (&Method::GET, ["admin", "front"]) => error::json(
            StatusCode::OK,
            &json!({ "front": host.front_metrics().snapshot(), "login_limit": login_limit(&config) }),
        ),
        (&Method::GET, ["admin", "health", "ready"]) => ready(&host, with_token).await,
        (&Method::GET, ["admin", "plugins"]) => error::json(StatusCode::OK, &plugins(&host)),
        (&Method::GET, ["admin", "breakers"]) => {
            error::json(StatusCode::OK, &json!({ "breakers": host.breakers() }))
        }
        (&Method::GET, ["admin", "config"]) => error::json(
            StatusCode::OK,
            &json!({ "values": host.live().effective(), "status": host.live().status() }),
        ),
        (&Method::GET, ["admin", "broker"]) => error::json(StatusCode::OK, &json!(host.broker())),
        (&Method::POST, ["admin", "plugins", "reload"]) => match host.lifecycle().reload().await {
            Ok(report) => error::json(StatusCode::OK, &json!(report)),
            Err(e) => {
                tracing::error!(error = %e, "reload failed");
                error::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "reload_failed",
                    "the plugins folder cannot be read",
                )
            }
        },
        (&Method::POST, ["admin", "plugins", name, "rollback"]) => {
            match host
                .lifecycle()
                .rollback(name, "rolled back through the admin API")
            {
                Ok(restored) => error::json(
                    StatusCode::OK,
                    &json!({ "name": name, "version": restored.version }),
                ),
                Err(e @ RollbackError::NotLoaded(_)) => {
                    error::error(StatusCode::NOT_FOUND, "not_found", &e.to_string())
                }
                Err(e @ RollbackError::NoPrevious(_)) => {
                    error::error(StatusCode::CONFLICT, "no_previous_version", &e.to_string())
                }
            }
        }
        (_, ["admin", "health", _] | ["admin", "plugins" | "breakers" | "front"]) => error::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this admin endpoint answers GET",
        ),
        _ => error::not_found(),
    }
}

/// The admin page, one file built into the binary.
fn page() -> Response<HyperOutgoingBody> {
    let mut response = Response::new(error::full(
        include_str!("admin_page.html").as_bytes().to_vec(),
    ));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Its own script and style only; nothing loaded from elsewhere.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
        ),
    );
    response
}

/// Why `request` looks sent by a page of another site, if it does.
fn foreign_page<B>(request: &Request<B>, allowed_hosts: &[String]) -> Option<&'static str> {
    let authority = request.uri().authority().map(|a| a.as_str()).or_else(|| {
        request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    if authority.is_some_and(|a| !host_allowed(a, allowed_hosts)) {
        return Some("this Host is not a name of the admin listener (see [admin] allowed_hosts)");
    }
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let headers = request.headers();
    let origin_is_other = headers.get(header::ORIGIN).is_some_and(|origin| {
        let own = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest);
        own.is_none() || own != authority
    });
    let site_is_other = headers
        .get("sec-fetch-site")
        .is_some_and(|site| !matches!(site.as_bytes(), b"same-origin" | b"none"));
    (origin_is_other || site_is_other)
        .then_some("a request from another origin may not change the admin state")
}

/// An IP address (no DNS name to rebind), `localhost`, or a name of `allowed_hosts`.
fn host_allowed(authority: &str, allowed_hosts: &[String]) -> bool {
    let Ok(authority) = authority.parse::<http::uri::Authority>() else {
        return false;
    };
    let host = authority.host();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok()
        || host.eq_ignore_ascii_case("localhost")
        || allowed_hosts.iter().any(|a| a.eq_ignore_ascii_case(host))
}

/// Whether `headers` carry `Authorization: Bearer <token>`, checked through its digest so
/// that neither the token's bytes nor its length leak through timing.
fn authorized(headers: &HeaderMap, token: &Secret) -> bool {
    let Ok(offered) = auth::bearer_token(headers) else {
        return false;
    };
    SecretDigest::of(token.expose().trim()).matches(offered.as_bytes())
}

/// The `[login_limit]` settings, for operators wondering why a login is refused.
fn login_limit(config: &Config) -> serde_json::Value {
    let l = &config.login_limit;
    json!({
        "enabled": !l.path.is_empty(),
        "path": l.path,
        "max_failures": l.max_failures,
        "max_failures_per_address": l.max_failures_per_address,
        "window_secs": l.window_secs,
    })
}

/// Ready when plugins are loaded, the database answers, every service a loaded plugin may
/// call can be found, and the host is not stopping. Without the token (a kubelet probe) only the verdict is told.
async fn ready(host: &Host, detailed: bool) -> Response<HyperOutgoingBody> {
    let database = host.database().ping().await.is_ok();
    let loaded = host.lifecycle().table().all();
    let plugins = !loaded.is_empty();
    let missing: std::collections::BTreeSet<String> = loaded
        .iter()
        .flat_map(|p| p.configured().grants.rpc.services().to_vec())
        .filter(|service| host.registry().endpoints(service).is_empty())
        .collect();
    let stopping = host.stopper().is_draining();
    let status = if database && plugins && missing.is_empty() && !stopping {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !detailed {
        return error::json(status, &json!({ "ready": status == StatusCode::OK }));
    }
    error::json(
        status,
        &json!({
            "ready": status == StatusCode::OK,
            "database": database,
            "plugins": plugins,
            "missing_services": missing,
            "stopping": stopping,
        }),
    )
}

/// Every plugin as it serves now: its routes are the routes in force, not those the host
/// started with.
fn plugins(host: &Host) -> serde_json::Value {
    let table = host.lifecycle().table();
    let routes = host.gateway().routes();
    let loaded: Vec<_> = table
        .all()
        .iter()
        .map(|p| {
            let configured = p.configured();
            let routes: Vec<_> = routes
                .of_plugin(&p.name)
                .map(|r| json!({ "path": r.path, "methods": r.methods() }))
                .collect();
            let counts = p.counters.counts();
            json!({
                "name": p.name,
                "version": p.version,
                "world": p.world,
                "source": p.source.display().to_string(),
                "routes": routes,
                "grants": configured.grants.describe(),
                "limits": configured.limits,
                "loaded_at": p.loaded_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                "invocations": counts.invocations,
                "errors": counts.errors,
                "traps": counts.traps,
                "deadline_kills": counts.deadline_kills,
                "no_responses": counts.no_responses,
                "http_export": p.http_export(),
                "instances": {
                    "reuse": configured.reuse,
                    "alive": p.counters.instances().alive,
                    "idle": p.counters.instances().idle,
                    "reuses": p.counters.instances().reuses,
                },
                "previous_version": table.previous(&p.name).map(|prev| prev.version.clone()),
                "last_rollback": table.last_rollback(&p.name),
            })
        })
        .collect();
    json!({ "plugins": loaded, "refused": table.refused() })
}
