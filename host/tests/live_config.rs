//! The config's layers applied while the host runs, against a real etcd: a breaker timeout
//! changed in etcd is used by the next calls, an invalid change is refused with the old
//! value kept, and a secret set in etcd reaches its plugin and nothing else.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{HostBuilder, PROBES, TestHost, admin_json, client, component, etcd_endpoint, median};

fn unique_prefix() -> String {
    format!("/test-{}/config", rand::random::<u32>())
}

/// The probes, with the etcd layer under `prefix`.
fn host(etcd: &str, prefix: &str) -> TestHost {
    HostBuilder::new()
        .plugins(&["probe", "probe-http"])
        .config(PROBES)
        .config(&format!(
            "[config_store]\nendpoints = [{etcd:?}]\nprefix = {prefix:?}\n"
        ))
        .start()
}

/// `micro-api config <args>` with the host's config file: (success, stdout + stderr).
fn config_cli(host: &TestHost, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_micro-api"))
        .args(["config", "--config"])
        .arg(&host.config_path)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Writes `key` straight into etcd, bypassing the CLI's check.
async fn etcd_put(etcd: &str, prefix: &str, key: &str, value: &str) {
    let mut client = etcd_client::Client::connect([etcd], None).await.unwrap();
    client
        .put(format!("{prefix}/{key}"), value, None)
        .await
        .unwrap();
}

async fn status(host: &TestHost) -> serde_json::Value {
    admin_json(host, "/admin/config").await["status"].clone()
}

/// Waits until `done` holds of `GET /admin/config`'s status; returns how long it took.
async fn wait_status(host: &TestHost, done: impl Fn(&serde_json::Value) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let status = status(host).await;
        if done(&status) {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{status}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// probe.sleep for `ms` through its breaker: (status, elapsed).
async fn sleep_call(host: &TestHost, ms: u64) -> (u16, Duration) {
    let started = Instant::now();
    let response = client()
        .post(host.url("/probe/call/probe/sleep"))
        .body(format!("{{\"ms\":{ms}}}"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), started.elapsed())
}

#[tokio::test]
async fn a_breaker_timeout_changed_in_etcd_applies_to_the_next_calls() {
    let Some(etcd) = etcd_endpoint("a_breaker_timeout_changed_in_etcd_applies") else {
        return;
    };
    let prefix = unique_prefix();
    let host = host(&etcd, &prefix);
    // The default timeout (1000 ms) lets a 300 ms call through.
    assert_eq!(sleep_call(&host, 300).await.0, 200);

    let (ok, out) = config_cli(&host, &["set", "breaker/probe.sleep/timeout_ms", "100"]);
    assert!(ok, "{out}");
    wait_status(&host, |s| s["generation"] == 1).await;
    let (code, took) = sleep_call(&host, 300).await;
    assert_eq!(code, 504, "the new 100 ms timeout applies");
    assert!(took < Duration::from_millis(280), "{took:?}");
    let values = admin_json(&host, "/admin/config").await["values"].clone();
    let entry = values
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == "breaker/probe.sleep/timeout_ms")
        .cloned()
        .unwrap();
    assert_eq!(
        (entry["value"].clone(), entry["layer"].clone()),
        (100.into(), "etcd".into())
    );

    // The CLI refuses an invalid value before it reaches etcd...
    let (ok, out) = config_cli(&host, &["set", "breaker/probe.sleep/timeout_ms", "0"]);
    assert!(
        !ok && out.contains("timeout_ms must be at least 1"),
        "{out}"
    );
    // ...and the host refuses one written straight into etcd, keeping the old value.
    etcd_put(&etcd, &prefix, "breaker/probe.sleep/timeout_ms", "0").await;
    wait_status(&host, |s| {
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("timeout_ms must be at least 1"))
    })
    .await;
    assert_eq!(status(&host).await["generation"], 1, "nothing applied");
    host.wait_for_log(&["config change refused", "timeout_ms must be at least 1"]);
    let (code, took) = sleep_call(&host, 300).await;
    assert_eq!(code, 504, "still the 100 ms timeout");
    assert!(took < Duration::from_millis(280), "{took:?}");
    // A valid value again is applied, and clears the error.
    etcd_put(&etcd, &prefix, "breaker/probe.sleep/timeout_ms", "2000").await;
    wait_status(&host, |s| s["generation"] == 2 && s["last_error"].is_null()).await;
    assert_eq!(sleep_call(&host, 300).await.0, 200);
}

#[tokio::test]
async fn a_grant_a_loaded_plugin_uses_cannot_be_withdrawn() {
    let Some(etcd) = etcd_endpoint("a_grant_a_loaded_plugin_uses_cannot_be_withdrawn") else {
        return;
    };
    let prefix = unique_prefix();
    let host = host(&etcd, &prefix);
    // probe imports sql: taking the grant away is refused, and probe keeps serving.
    etcd_put(&etcd, &prefix, "plugin/probe/sql", "false").await;
    wait_status(&host, |s| {
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("plugin probe") && e.contains("sql"))
    })
    .await;
    let response = client()
        .post(host.url("/probe/call/probe/count"))
        .body(r#"{"key":"k"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut etcd_client = etcd_client::Client::connect([etcd.as_str()], None)
        .await
        .unwrap();
    etcd_client
        .delete(format!("{prefix}/plugin/probe/sql"), None)
        .await
        .unwrap();
    wait_status(&host, |s| s["last_error"].is_null()).await;
    // A route added in the config file is served without a restart.
    let mut text = std::fs::read_to_string(&host.config_path).unwrap();
    text.push_str("\n[[route]]\npath = \"/added/{*rest}\"\nplugin = \"probe-http\"\n");
    std::fs::write(&host.config_path, text).unwrap();
    let started = Instant::now();
    loop {
        let response = client().get(host.url("/added/x")).send().await.unwrap();
        // probe-http answers 404 itself for an unknown path: the body says it was reached.
        let body = response.text().await.unwrap();
        if body.contains("no such route") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `check` holds of `GET /admin/plugins`.
async fn wait_plugins(host: &TestHost, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let started = Instant::now();
    loop {
        let plugins = host.admin_plugins().await;
        if check(&plugins) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: {plugins}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_plugin_refused_for_its_grants_loads_once_etcd_grants_them() {
    let Some(etcd) = etcd_endpoint("a_plugin_refused_for_its_grants_loads") else {
        return;
    };
    let prefix = unique_prefix();
    let host = host(&etcd, &prefix);
    // probe under another name: it imports sql and rpc, which nothing grants probe2.
    std::fs::copy(component("probe"), host.plugins_dir().join("probe2.wasm")).unwrap();
    wait_plugins(&host, "probe2 refused", |p| {
        p["refused"]["probe2"].is_object()
    })
    .await;
    etcd_put(&etcd, &prefix, "plugin/probe2/rpc", r#"["probe"]"#).await;
    etcd_put(&etcd, &prefix, "plugin/probe2/sql", "true").await;
    wait_plugins(&host, "probe2 loaded", |p| {
        p["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|plugin| plugin["name"] == "probe2")
    })
    .await;
}

#[tokio::test]
async fn a_secret_set_in_etcd_reaches_the_granted_plugin_and_nothing_else() {
    let Some(etcd) = etcd_endpoint("a_secret_set_in_etcd_reaches_the_granted_plugin") else {
        return;
    };
    const SECRET: &str = "s3cret-9f2c41d7";
    let prefix = unique_prefix();
    let host = host(&etcd, &prefix);
    let (ok, out) = config_cli(&host, &["set", "plugin/probe/secrets/api_key", SECRET]);
    assert!(ok, "{out}");
    wait_status(&host, |s| s["generation"] == 1).await;
    // probe is granted it (its [plugin.probe.secrets]).
    let response = client()
        .post(host.url("/probe/call/probe/config"))
        .body(r#"{"key":"api_key"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains(SECRET), "{body}");
    // Nowhere else: not in the admin API, `config list`, `config get`, nor the host log.
    let config = admin_json(&host, "/admin/config").await.to_string();
    let plugins = host.admin_plugins().await.to_string();
    let (_, list) = config_cli(&host, &["list"]);
    let (_, get) = config_cli(&host, &["get", "plugin/probe/secrets/api_key"]);
    assert!(
        list.contains("plugin/probe/secrets/api_key = <secret>"),
        "{list}"
    );
    for (place, text) in [
        ("/admin/config", config),
        ("/admin/plugins", plugins),
        ("config list", list),
        ("config get", get),
        ("the log", host.logs().join("\n")),
    ] {
        assert!(!text.contains(SECRET), "the secret shows in {place}");
    }
}

/// The figure the config issue asks for; run with
/// `cargo xtask test --test live_config -- --ignored --nocapture config_figures`.
#[tokio::test]
#[ignore = "a measurement, not a check: run it on purpose"]
async fn config_figures() {
    let Some(etcd) = etcd_endpoint("config_figures") else {
        return;
    };
    let prefix = unique_prefix();
    let host = host(&etcd, &prefix);
    let mut applied = Vec::new();
    for i in 1..=20u64 {
        let started = Instant::now();
        etcd_put(
            &etcd,
            &prefix,
            "breaker/probe.sleep/timeout_ms",
            &(1000 + i).to_string(),
        )
        .await;
        wait_status(&host, |s| s["generation"] == i).await;
        applied.push(started.elapsed());
    }
    eprintln!("etcd put -> applied, median of 20: {:?}", median(applied));
}
