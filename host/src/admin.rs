//! The admin listener (127.0.0.1:9090 by default, never the public port): health, plugins
//! and breakers as JSON, and the plugin lifecycle's controls (reload, rollback).

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::app::App;
use crate::front::error;
use crate::plugins::reload;
use crate::plugins::table::RollbackError;

pub async fn handle(app: Arc<App>, request: Request<Incoming>) -> Response<HyperOutgoingBody> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["admin", "health", "live"]) => {
            error::json(StatusCode::OK, &json!({ "status": "live" }))
        }
        (&Method::GET, ["admin", "health", "ready"]) => ready(&app).await,
        (&Method::GET, ["admin", "plugins"]) => error::json(StatusCode::OK, &plugins(&app)),
        (&Method::GET, ["admin", "breakers"]) => error::json(
            StatusCode::OK,
            &json!({ "breakers": app.breakers.statuses() }),
        ),
        (&Method::POST, ["admin", "plugins", "reload"]) => match reload::reload(&app).await {
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
            match app.rollback(name, "rolled back through the admin API") {
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
        (_, ["admin", "health", _] | ["admin", "plugins" | "breakers"]) => error::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this admin endpoint answers GET",
        ),
        _ => error::not_found(),
    }
}

async fn ready(app: &App) -> Response<HyperOutgoingBody> {
    let database = app.database.ping().await.is_ok();
    let plugins = !app.plugins.all().is_empty();
    let status = if database && plugins {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    error::json(
        status,
        &json!({ "ready": status == StatusCode::OK, "database": database, "plugins": plugins }),
    )
}

fn plugins(app: &App) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let loaded: Vec<_> = app
        .plugins
        .all()
        .iter()
        .map(|p| {
            let routes: Vec<_> = app
                .config
                .route
                .iter()
                .filter(|r| r.plugin == p.name)
                .map(|r| json!({ "path": r.path, "methods": r.methods }))
                .collect();
            json!({
                "name": p.name,
                "version": p.version,
                "world": p.world,
                "source": p.source.display().to_string(),
                "routes": routes,
                "grants": {
                    "rpc": p.grants.rpc,
                    "sql": p.grants.sql,
                    "crypto": p.grants.crypto,
                    "config": p.grants.config.keys().collect::<Vec<_>>(),
                },
                "limits": { "memory_mb": p.limits.memory_mb, "deadline_ms": p.limits.deadline_ms },
                "loaded_at": p.loaded_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                "invocations": p.stats.invocations.load(Relaxed),
                "errors": p.stats.errors.load(Relaxed),
                "traps": p.stats.traps.load(Relaxed),
                "previous_version": app.plugins.previous(&p.name).map(|prev| prev.version.clone()),
                "last_rollback": app.plugins.last_rollback(&p.name),
            })
        })
        .collect();
    json!({ "plugins": loaded, "refused": app.plugins.refused() })
}
