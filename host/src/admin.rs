//! The admin listener (127.0.0.1:9090 by default, never the public port): health, plugins
//! and breakers as JSON.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::app::App;
use crate::front::error;

pub async fn handle(app: Arc<App>, request: Request<Incoming>) -> Response<HyperOutgoingBody> {
    if request.method() != Method::GET {
        return error::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "admin endpoints answer GET",
        );
    }
    match request.uri().path() {
        "/admin/health/live" => error::json(StatusCode::OK, &json!({ "status": "live" })),
        "/admin/health/ready" => ready(&app).await,
        "/admin/plugins" => error::json(StatusCode::OK, &plugins(&app)),
        "/admin/breakers" => error::json(
            StatusCode::OK,
            &json!({ "breakers": app.breakers.statuses() }),
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
            })
        })
        .collect();
    json!({ "plugins": loaded, "refused": app.plugins.refused() })
}
