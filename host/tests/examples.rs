//! The examples of `plugins/examples/`, and `test-plugins/hello` (a component built from the
//! standard `wasi:http` bindings alone, no SDK), served by a real host: what the README and
//! the SDK's README show is what these answer.

mod common;

use std::time::{Duration, Instant};

use common::{
    HostBuilder, SEED_CONFIG, SEED_PLUGINS, TestHost, admin_json, client, login, probe_calling,
};
use serde_json::{Value, json};

/// The hello example's config, as its `//!` documents it.
const HELLO: &str = r#"
[[route]]
path = "/hello/{name}"
methods = ["GET"]
plugin = "example-hello"

[plugin.example-hello]
rpc = ["user"]
config = { greeting = "Howdy" }
"#;

async fn get(host: &TestHost, path: &str) -> (u16, Value) {
    let response = client().get(host.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_hello_example_greets_from_config_and_asks_the_user_service() {
    let host = HostBuilder::seed()
        .plugins(&["example-hello"])
        .config(HELLO)
        .start();
    assert_eq!(
        get(&host, "/hello/micro").await,
        (
            200,
            json!({"message": "Howdy, micro!", "user": {"id": 10001, "name": "micro"}})
        )
    );
    assert_eq!(
        get(&host, "/hello/nobody").await,
        (200, json!({"message": "Howdy, nobody!", "user": null}))
    );
    let (status, body) = get(&host, "/hello/a/b").await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
}

#[tokio::test]
async fn the_hello_example_reads_its_name_from_the_route() {
    let host = HostBuilder::seed()
        .plugins(&["example-hello"])
        .config(HELLO)
        .start();
    // The host hands over the segment as it is in the path; `param` decodes it once.
    for (segment, name) in [
        ("Jos%C3%A9", "José"),
        ("a%2Fb", "a/b"),
        ("a+b%20c", "a+b c"),
        ("%2525", "%25"),
    ] {
        assert_eq!(
            get(&host, &format!("/hello/{segment}")).await,
            (
                200,
                json!({"message": format!("Howdy, {name}!"), "user": null})
            ),
            "{segment}"
        );
    }
    // A client's own copy of the parameter header never wins over the path.
    let response = client()
        .get(host.url("/hello/micro"))
        .header("x-micro-api-param-name", "nobody")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Howdy, micro!", "{body}");
    assert_eq!(body["user"]["id"], 10001, "{body}");
}

/// Calls `example-greeting.Greet` through probe-http's rpc passthrough.
async fn greet(host: &TestHost, name: &str) -> (u16, Value) {
    let response = client()
        .post(host.url("/probe/call/example-greeting/Greet"))
        .body(json!({ "name": name }).to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

const GREETING: &str = r#"
[plugin.example-greeting]
rpc = ["user"]
"#;

#[tokio::test]
async fn the_greeting_example_falls_back_when_the_user_service_is_gone() {
    let host = HostBuilder::new()
        .plugins(SEED_PLUGINS)
        .plugins(&["probe-http", "example-greeting"])
        .config(SEED_CONFIG)
        .config(&probe_calling(&["example-greeting"]))
        .config(GREETING)
        .start();
    assert_eq!(
        greet(&host, "micro").await,
        (
            200,
            json!({"message": "Welcome back, micro!", "user_id": 10001, "degraded": false})
        )
    );
    assert_eq!(
        greet(&host, "nobody").await,
        (
            200,
            json!({"message": "Hello, nobody!", "user_id": null, "degraded": false})
        )
    );
    // The user service goes away: its callers get the fallback, not an error.
    std::fs::remove_file(host.plugins_dir().join("user.wasm")).unwrap();
    host.wait_for_log(&["plugin unloaded", "user"]);
    assert_eq!(
        greet(&host, "micro").await,
        (
            200,
            json!({"message": "Hello, micro!", "user_id": null, "degraded": true})
        )
    );
    host.wait_for_log(&["user service unavailable, greeting without it"]);
}

#[tokio::test]
async fn a_component_from_the_standard_wasi_http_bindings_alone_is_served() {
    let host = HostBuilder::new()
        .plugins(&["hello"])
        .config("[[route]]\npath = \"/hello\"\nplugin = \"hello\"\n")
        .start();
    let response = client().get(host.url("/hello")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello");
    let plugin = host.plugin_stats("hello").await;
    assert_eq!(plugin["world"], "http");
}

/// The subscriber example's config, as its `//!` documents it.
const SUBSCRIBER: &str = r#"
[plugin.example-subscriber]
subscribe = ["user.login"]
"#;

/// `/admin/broker`'s count of messages a subscriber handled without error.
async fn delivered(host: &TestHost) -> u64 {
    admin_json(host, "/admin/broker").await["stats"]["delivered"]
        .as_u64()
        .unwrap()
}

/// Waits until the broker has delivered `n` messages.
async fn wait_delivered(host: &TestHost, n: u64) {
    let started = Instant::now();
    while delivered(host).await < n {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} of {n} delivered",
            delivered(host).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_subscriber_example_warns_of_failed_logins_only() {
    // The seed's user-api publishes `user.login`; the in-process broker (the default) hands
    // each event to the example.
    let host = HostBuilder::seed()
        .plugins(&["example-subscriber"])
        .config(SUBSCRIBER)
        .start();
    assert_eq!(
        host.plugin_stats("example-subscriber").await["world"],
        "subscriber"
    );

    // A successful login is handled (delivered without error) and not warned of.
    assert_eq!(login(&host, "userName=micro&pwd=123").await.0, 200);
    wait_delivered(&host, 1).await;
    assert_eq!(
        host.plugin_stats("example-subscriber").await["invocations"],
        1
    );
    // A failed one (an unknown user) is, with the name the client typed.
    assert_eq!(login(&host, "userName=mallory&pwd=guess").await.0, 401);
    let line = host.wait_for_log(&["failed login", "example-subscriber", "mallory"]);
    wait_delivered(&host, 2).await;
    // Only the failed attempt was warned of.
    let warnings = host
        .logs()
        .into_iter()
        .filter(|l| l.contains("failed login"))
        .count();
    assert_eq!(warnings, 1, "{line}");
}
