//! Traces: one login is one trace from the front door to sql, crypto and auth; host calls
//! nest in the spans a plugin opens; across two hosts the remote spans are children of the
//! caller's.

use std::time::{Duration, Instant};

use crate::SEED_LOGIN;
use crate::common::{self, HostBuilder, SEED_CONFIG, client, etcd_endpoint};
use crate::otlp::{Received, Receiver, child, has_span, is_login, login_traced, new_traceparent};

#[tokio::test]
async fn a_login_is_one_trace_from_the_front_door_to_sql_crypto_and_auth() {
    let receiver = Receiver::start().await;
    let host = receiver.host(HostBuilder::seed(), 1.0, "").start();
    let (traceparent, trace_id, caller) = new_traceparent();
    // (The request's log lines carry the same trace id: see the log level trace test.)
    let (status, body) = login_traced(&host, SEED_LOGIN, &traceparent).await;
    assert_eq!(status, 200, "{body}");
    let spans = receiver
        .wait_for(|s| s.iter().any(is_login) && has_span(s, "crypto.sign_token"))
        .await;

    assert!(
        spans.iter().all(|s| s.trace_id == trace_id),
        "one trace id everywhere: {spans:#?}"
    );
    let front = spans.iter().find(|s| is_login(s)).unwrap();
    assert_eq!(front.name, "POST /user/login");
    assert_eq!(
        front.parent_id, caller,
        "the caller's traceparent is honoured"
    );
    assert_eq!(front.attr("http.route"), "/user/login");
    assert_eq!(front.attr("http.request.method"), "POST");
    assert_eq!(front.attr("http.response.status_code"), "200");

    let api = child(&spans, front, "user-api invocation", |s| {
        s.attr("plugin.name") == "user-api" && !s.attr("plugin.version").is_empty()
    });
    let form = child(&spans, api, "the plugin's own span", |s| {
        s.name == "read login form"
    });
    assert_eq!(form.attr("plugin"), "user-api");
    let rpc_user = child(&spans, api, "rpc to user", |s| {
        s.attr("rpc.service") == "user" && s.attr("rpc.method") == "CheckPassword"
    });
    assert_eq!(rpc_user.attr("micro_api.breaker.outcome"), "ok");
    let user = child(&spans, rpc_user, "user invocation", |s| {
        s.attr("plugin.name") == "user"
    });
    let sql = child(&spans, user, "sql statement", |s| {
        s.attr("db.operation.name") == "SELECT"
    });
    assert_eq!(sql.attr("db.collection.name"), "user");
    assert_eq!(sql.attr("db.system.name"), "sqlite");
    assert!(
        sql.attributes.values().all(|v| v != "micro"),
        "no parameter value in a sql span: {sql:?}"
    );
    child(&spans, user, "password check", |s| {
        s.name == "crypto.verify_password"
    });
    let rpc_auth = child(&spans, api, "rpc to auth", |s| {
        s.attr("rpc.service") == "auth" && s.attr("rpc.method") == "MakeAccessToken"
    });
    let auth = child(&spans, rpc_auth, "auth invocation", |s| {
        s.attr("plugin.name") == "auth"
    });
    child(&spans, auth, "token signing", |s| {
        s.name == "crypto.sign_token"
    });
}

#[tokio::test]
async fn host_calls_nest_in_the_spans_a_plugin_opened() {
    let receiver = Receiver::start().await;
    let probes = HostBuilder::new()
        .plugins(&["probe", "probe-http"])
        .config(common::PROBES);
    let host = receiver.host(probes, 1.0, "").start();
    let response = client()
        .post(host.url("/probe/traced-call/probe/echo"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The front span ends last, and may come in a later export batch than the others.
    let spans = receiver
        .wait_for(|s| {
            s.iter().any(|s| s.attr("plugin.name") == "probe")
                && s.iter().any(|s| s.attr("http.route") == "/probe/{*rest}")
        })
        .await;
    let front = spans
        .iter()
        .find(|s| s.attr("http.route") == "/probe/{*rest}")
        .unwrap();
    let invocation = child(&spans, front, "probe-http invocation", |s| {
        s.attr("plugin.name") == "probe-http"
    });
    let outer = child(&spans, invocation, "outer span", |s| s.name == "outer");
    let inner = child(&spans, outer, "inner span", |s| s.name == "inner");
    assert_eq!(inner.attr("probe.step"), "call");
    let rpc = child(&spans, inner, "rpc opened inside", |s| {
        s.attr("rpc.service") == "probe"
    });
    child(&spans, rpc, "callee", |s| s.attr("plugin.name") == "probe");
}

#[tokio::test]
async fn across_two_hosts_the_remote_spans_are_children_of_the_callers() {
    let Some(etcd) = etcd_endpoint("across_two_hosts_the_remote_spans_are_children") else {
        return;
    };
    let receiver = Receiver::start().await;
    let prefix = format!("/micro-api-trace-{:08x}", rand::random::<u32>());
    let on_node = |id: &str, plugins: &[&str]| {
        let cluster = format!(
            "[server]\nnode_id = {id:?}\nrpc = \"127.0.0.1:0\"\n\
             [registry]\nbackend = \"etcd\"\nendpoints = [{etcd:?}]\nprefix = {prefix:?}\n\
             [cluster]\nsecret = \"trace-test-cluster-secret-0123\"\n"
        );
        receiver
            .host(HostBuilder::new().plugins(plugins), 1.0, "")
            .config(&cluster)
            .config(SEED_CONFIG)
            .start()
    };
    let front = on_node("front", &["user-api"]);
    let _back = on_node("back", &["user", "auth"]);
    // Once the front node sees the back node's services in etcd.
    let started = Instant::now();
    while front
        .admin_request(reqwest::Method::GET, "/admin/health/ready")
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "front never ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (traceparent, trace_id, _) = new_traceparent();
    let (status, body) = login_traced(&front, SEED_LOGIN, &traceparent).await;
    assert_eq!(status, 200, "{body}");
    let spans = receiver
        .wait_for(|s| {
            s.iter()
                .filter(|s| s.node == "back" && s.attr("plugin.name") == "auth")
                .count()
                >= 1
                && s.iter().any(is_login)
        })
        .await;
    let spans: Vec<Received> = spans
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect();
    let on = |node: &str| spans.iter().filter(|s| s.node == node).count();
    assert!(on("front") > 0 && on("back") > 0, "{spans:#?}");
    for (service, method) in [("user", "CheckPassword"), ("auth", "MakeAccessToken")] {
        let client_span = spans
            .iter()
            .find(|s| s.node == "front" && s.attr("rpc.service") == service)
            .unwrap_or_else(|| panic!("no rpc span to {service}: {spans:#?}"));
        let server = child(&spans, client_span, "remote server span", |s| {
            s.node == "back" && s.attr("rpc.method") == method
        });
        child(&spans, server, "remote invocation", |s| {
            s.attr("plugin.name") == service
        });
    }
}
