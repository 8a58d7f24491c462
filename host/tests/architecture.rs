//! What the host's shape promises, checked from outside: a config change applied from the
//! top reaches every part (the admin API shows a route added live), every event is counted
//! once in the one metrics registry (a trap moves `/metrics` and the admin JSON by one
//! each), each listener is held to the limits it was given, and a capability added as one
//! module (`wasi:config/store`) is granted, refused and served like the others.

mod common;

use std::time::{Duration, Instant};

use common::{HostBuilder, PROBES, TestHost, admin_json, client};

/// Waits until the host has applied `generation` config changes.
async fn wait_generation(host: &TestHost, generation: u64) {
    let started = Instant::now();
    loop {
        let status = admin_json(host, "/admin/config").await["status"].clone();
        if status["generation"] == generation {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn routes_of(plugins: &serde_json::Value, plugin: &str) -> Vec<String> {
    plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == plugin)
        .unwrap_or_else(|| panic!("{plugin} not loaded: {plugins}"))["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_admin_api_shows_a_route_added_by_a_live_config_change() {
    let host = HostBuilder::new()
        .plugins(&["hello"])
        .config("[[route]]\npath = \"/hello\"\nplugin = \"hello\"\n")
        .start();
    assert_eq!(routes_of(&host.admin_plugins().await, "hello"), ["/hello"]);
    let text = std::fs::read_to_string(&host.config_path).unwrap();
    std::fs::write(
        &host.config_path,
        format!("{text}\n[[route]]\npath = \"/greetings/{{name}}\"\nplugin = \"hello\"\n"),
    )
    .unwrap();
    wait_generation(&host, 1).await;
    assert_eq!(
        routes_of(&host.admin_plugins().await, "hello"),
        ["/hello", "/greetings/{name}"],
        "the routes in force, not those the host started with"
    );
    let answer = client()
        .get(host.url("/greetings/you"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "and the new route serves");
}

/// `micro_api_plugin_traps_total` of `plugin` in `/metrics`.
async fn traps_in_metrics(host: &TestHost, plugin: &str) -> u64 {
    let text = host
        .admin_request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("micro_api_plugin_traps_total{{plugin=\"{plugin}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn a_trap_moves_the_trap_count_by_one_in_metrics_and_in_the_admin_json() {
    let host = HostBuilder::new()
        .plugins(&["probe", "probe-http"])
        .config(PROBES)
        .start();
    let before = (
        traps_in_metrics(&host, "probe-http").await,
        host.plugin_stats("probe-http").await["traps"]
            .as_u64()
            .unwrap(),
    );
    let answer = client().get(host.url("/probe/trap")).send().await.unwrap();
    assert_eq!(answer.status(), 500);
    let after = (
        traps_in_metrics(&host, "probe-http").await,
        host.plugin_stats("probe-http").await["traps"]
            .as_u64()
            .unwrap(),
    );
    assert_eq!(
        after,
        (before.0 + 1, before.1 + 1),
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.0, after.1, "both read the same series");
}

const CONFIG_READER: &str = r#"
[[route]]
path = "/config/{*key}"
plugin = "config-reader"

[[route]]
path = "/config"
plugin = "config-reader"

[plugin.config-reader]
wasi_config = true
config = { greeting = "hello", color = "blue" }
secrets = { api_key = "s3cret-value" }
"#;

async fn get(host: &TestHost, path: &str) -> (u16, String) {
    let answer = client().get(host.url(path)).send().await.unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

#[tokio::test]
async fn a_component_reads_its_values_through_wasi_config_store() {
    let host = HostBuilder::new()
        .plugins(&["config-reader"])
        .config(CONFIG_READER)
        .start();
    assert_eq!(get(&host, "/config/greeting").await, (200, "hello".into()));
    assert_eq!(get(&host, "/config/api_key").await.1, "s3cret-value");
    assert_eq!(get(&host, "/config/nope").await.0, 404, "unset is none");
    assert_eq!(
        get(&host, "/config").await,
        (200, "color=blue\ngreeting=hello".into()),
        "get-all leaves the secrets out by default"
    );
    // A live change: the next request sees the new value, and the section's own key.
    let text = std::fs::read_to_string(&host.config_path).unwrap();
    let text = text.replace("\"blue\"", "\"green\"");
    std::fs::write(
        &host.config_path,
        format!("{text}\n[wasi_config]\nsecrets_in_get_all = true\n"),
    )
    .unwrap();
    wait_generation(&host, 1).await;
    assert_eq!(
        get(&host, "/config").await.1,
        "api_key=s3cret-value\ncolor=green\ngreeting=hello"
    );
    let grants = &host.plugin_stats("config-reader").await["grants"];
    assert_eq!(grants["wasi_config"], true, "{grants}");
    assert!(
        !grants.to_string().contains("s3cret"),
        "no value in the admin API: {grants}"
    );
}

#[tokio::test]
async fn a_component_importing_wasi_config_without_the_grant_is_refused_with_the_fix() {
    let host = HostBuilder::new()
        .plugins(&["config-reader"])
        .config("[plugin.config-reader]\nconfig = { greeting = \"hello\" }\n")
        .start();
    let all = host.admin_plugins().await;
    let reason = all["refused"]["config-reader"]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("not refused: {all}"))
        .to_string();
    assert!(
        reason.starts_with("imports wasi:config/store@0.2.0-rc.1, which [plugin.config-reader] does not grant: add `wasi_config = true`"),
        "{reason}"
    );
}

/// Two front doors in one process, each held to its own limits: a request head that one
/// accepts, the other refuses 431.
#[tokio::test]
async fn each_listener_is_held_to_the_limits_it_is_given() {
    use std::sync::Arc;

    use micro_api::front::{self, FrontConfig, FrontMetrics, error};

    let metrics = Arc::new(FrontMetrics::register(
        &mut micro_api::telemetry::metrics::registry(),
    ));
    let strict = FrontConfig {
        max_header_bytes: 8192,
        ..FrontConfig::default()
    };
    let roomy = FrontConfig {
        max_header_bytes: 64 * 1024,
        ..FrontConfig::default()
    };
    let mut addresses = Vec::new();
    for limits in [strict, roomy] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addresses.push(listener.local_addr().unwrap());
        tokio::spawn(front::serve(
            listener,
            None,
            limits,
            metrics.clone(),
            |_request| async { error::json(http::StatusCode::OK, &serde_json::json!({})) },
            front::StopSignal::never(),
        ));
    }
    let big = "x".repeat(20 * 1024);
    let status = |addr| {
        let big = big.clone();
        async move {
            client()
                .get(format!("http://{addr}/"))
                .header("x-big", big)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(addresses[0]).await, 431, "the strict listener");
    assert_eq!(
        status(addresses[1]).await,
        200,
        "the roomy one, same process"
    );
}
