//! Breakers, deadlines and recovery, with the test-only `probe` service and `probe-http`
//! handler: real components, a real host, real HTTP.

mod common;

use std::time::{Duration, Instant};

use common::{HostBuilder, PROBES, TestHost, client};
use serde_json::{Value, json};

fn probe_host(extra: &str) -> TestHost {
    HostBuilder::new()
        .plugins(&["probe", "probe-http"])
        .config(PROBES)
        .config(extra)
        .start()
}

/// `POST /probe/call/probe/{method}` with `payload`: (status, body, Retry-After).
async fn call(host: &TestHost, method: &str, payload: Value) -> (u16, Value, Option<String>) {
    let answer = common::probe_call(host, method, payload).await;
    (answer.status, answer.body, answer.retry_after)
}

#[tokio::test]
async fn an_open_breaker_never_invokes_the_callee() {
    let host =
        probe_host("[breaker.\"probe.fail\"]\nvolume_threshold = 4\nsleep_window_ms = 60000\n");
    for _ in 0..4 {
        let (status, body, _) = call(&host, "fail", json!({})).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("unavailable"))
        );
    }
    for _ in 0..3 {
        let (status, body, retry_after) = call(&host, "fail", json!({})).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("circuit_open"))
        );
        assert!(retry_after.is_some(), "circuit_open carries Retry-After");
    }
    assert_eq!(host.invocations("probe").await, 4);
    assert_eq!(host.breaker("probe.fail").await["state"], "open");
    host.wait_for_log(&["circuit breaker transition", "probe.fail"]);
}

#[tokio::test]
async fn application_errors_never_trip_the_breaker() {
    let host = probe_host("[breaker.\"probe.app-error\"]\nvolume_threshold = 4\n");
    for _ in 0..30 {
        let (status, body, _) = call(&host, "app-error", json!({})).await;
        assert_eq!(body["error"]["code"], "nope", "{status}");
    }
    assert_eq!(host.breaker("probe.app-error").await["state"], "closed");
    assert_eq!(host.invocations("probe").await, 30);
}

#[tokio::test]
async fn one_call_over_max_concurrent_is_rejected_at_once() {
    // 101 calls from one address: the front's own cap on one address's requests in
    // flight (32) is opened wide, so the breaker's is the one reached.
    let host = probe_host(
        "[breaker.\"probe.sleep\"]\nmax_concurrent = 100\ntimeout_ms = 8000\nvolume_threshold = 1000\n\
         [front]\nmax_requests_per_address = 1000\n",
    );
    let calls = (0..101).map(|_| {
        let host = &host;
        async move {
            let started = Instant::now();
            let (status, body, _) = call(host, "sleep", json!({ "ms": 2000 })).await;
            (status, body, started.elapsed())
        }
    });
    let results = futures::future::join_all(calls).await;
    let rejected: Vec<_> = results
        .iter()
        .filter(|(status, _, _)| *status == 503)
        .collect();
    assert_eq!(
        rejected.len(),
        1,
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert_eq!(rejected[0].1["error"]["code"], "rejected");
    assert!(
        rejected[0].2 < Duration::from_millis(1500),
        "rejected after {:?}",
        rejected[0].2
    );
    assert_eq!(
        results
            .iter()
            .filter(|(status, _, _)| *status == 200)
            .count(),
        100
    );
}

#[tokio::test]
async fn clients_that_hang_up_never_trip_the_callees_breaker() {
    let host = probe_host("[breaker.\"probe.sleep\"]\nvolume_threshold = 4\n");
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    for _ in 0..8 {
        let sent = impatient
            .post(host.url("/probe/call/probe/sleep"))
            .json(&json!({ "ms": 400 }))
            .send()
            .await;
        // An answer this fast is the breaker refusing: hang-ups counted as failures.
        assert!(
            sent.is_err(),
            "answered within 100 ms: {:?}",
            sent.map(|r| r.status())
        );
    }
    // The guests run to their ends without their clients: eight successful calls.
    let deadline = Instant::now() + Duration::from_secs(10);
    let breaker = loop {
        let breaker = host.breaker("probe.sleep").await;
        if breaker["window_total"] == 8 && breaker["in_flight"] == 0 {
            break breaker;
        }
        assert!(Instant::now() < deadline, "{breaker}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (&breaker["state"], &breaker["window_errors"]),
        (&json!("closed"), &json!(0)),
        "{breaker}"
    );
    let (status, _, _) = call(&host, "sleep", json!({ "ms": 1 })).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn half_open_lets_exactly_one_probe_through_then_recovers() {
    let host = probe_host(
        "[breaker.\"probe.sleep\"]\ntimeout_ms = 300\nvolume_threshold = 4\nsleep_window_ms = 1500\n",
    );
    for _ in 0..4 {
        let (status, body, _) = call(&host, "sleep", json!({ "ms": 1000 })).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (504, Some("timeout"))
        );
    }
    let (status, body, _) = call(&host, "sleep", json!({ "ms": 10 })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("circuit_open"))
    );
    let before = host.invocations("probe").await;

    tokio::time::sleep(Duration::from_millis(1600)).await;
    let batch = (0..5).map(|_| call(&host, "sleep", json!({ "ms": 200 })));
    let statuses: Vec<u16> = futures::future::join_all(batch)
        .await
        .into_iter()
        .map(|(status, _, _)| status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        host.invocations("probe").await,
        before + 1,
        "only the probe ran"
    );

    // The probe's success closed the breaker.
    assert_eq!(host.breaker("probe.sleep").await["state"], "closed");
    assert_eq!(call(&host, "sleep", json!({ "ms": 10 })).await.0, 200);
}

#[tokio::test]
async fn the_callee_gets_what_is_left_of_the_callers_deadline() {
    // probe.call has 500 ms; the probe.sleep it makes would get 10 s on its own breaker.
    let host = probe_host(
        "[breaker.\"probe.call\"]\ntimeout_ms = 500\n[breaker.\"probe.sleep\"]\ntimeout_ms = 10000\n",
    );
    let started = Instant::now();
    let (status, body, _) = call(
        &host,
        "call",
        json!({ "service": "probe", "method": "sleep", "payload": { "ms": 4000 } }),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (504, Some("timeout"))
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    // The inner call was cut at the outer deadline too, not left running for 4 s.
    loop {
        let inner = host.breaker("probe.sleep").await;
        if inner["in_flight"] == 0 {
            assert_eq!(inner["window_errors"], 1, "{inner}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(2000),
            "inner call still running: {inner}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_call_cycle_hits_the_depth_limit_fast() {
    let host = probe_host("");
    let mut payload = json!({ "ms": 1 });
    let mut method = "sleep";
    for _ in 0..12 {
        payload = json!({ "service": "probe", "method": method, "payload": payload });
        method = "call";
    }
    let started = Instant::now();
    let (status, body, _) = call(&host, "call", payload).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(host.invocations("probe").await <= 9);
}

#[tokio::test]
async fn a_trapping_plugin_fails_its_request_alone() {
    let host = probe_host("");
    let http = client();
    let hellos = (0..20).map(|_| http.get(host.url("/probe/hello")).send());
    let traps = (0..5).map(|_| http.get(host.url("/probe/trap")).send());
    let (hellos, traps) = tokio::join!(
        futures::future::join_all(hellos),
        futures::future::join_all(traps)
    );
    for hello in hellos {
        let hello = hello.unwrap();
        assert_eq!(hello.status(), 200);
        assert_eq!(hello.text().await.unwrap(), "hello from probe-http");
    }
    for trap in traps {
        let trap = trap.unwrap();
        assert_eq!(trap.status(), 500);
        let body: Value = trap.json().await.unwrap();
        assert_eq!(body["error"]["code"], "plugin_trap");
    }
    host.wait_for_log(&[
        "probe-http panicked on purpose",
        "\"plugin\":\"probe-http\"",
    ]);
    assert_eq!(host.plugin_stats("probe-http").await["traps"], 5);

    // A trapping rpc callee is `unavailable` to its caller.
    let (status, body, _) = call(&host, "trap", json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
    host.wait_for_log(&["probe panicked on purpose", "\"plugin\":\"probe\""]);
    assert_eq!(
        http.get(host.url("/probe/hello"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_spinning_plugin_is_stopped_at_its_deadline() {
    let host = HostBuilder::new()
        .plugins(&["probe", "probe-http"])
        .config("[[route]]\npath = \"/probe/{*rest}\"\nplugin = \"probe-http\"\n[plugin.probe-http]\nrpc = [\"probe\"]\nlimits = { deadline_ms = 500 }\n[plugin.probe]\nrpc = [\"probe\"]\nsql = true\n")
        .start();
    let http = client();
    let started = Instant::now();
    let spin = http.get(host.url("/probe/spin")).send();
    let hellos =
        futures::future::join_all((0..10).map(|_| http.get(host.url("/probe/hello")).send()));
    let (spin, hellos) = tokio::join!(spin, hellos);
    let spin = spin.unwrap();
    assert_eq!(spin.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(hellos.into_iter().all(|h| h.unwrap().status() == 200));
    // A spinning rpc callee times out the same way.
    let (status, _, _) = call(&host, "spin", json!({})).await;
    assert_eq!(status, 504);
}

#[tokio::test]
async fn memory_bombs_and_deep_recursion_fail_alone_and_memory_comes_back() {
    let host = probe_host(
        "[plugin.probe.limits]\nmemory_mb = 32\n[breaker.\"probe.grow\"]\nvolume_threshold = 1000\n",
    );
    let (status, _, _) = call(&host, "grow", json!({ "mb": 4 })).await;
    assert_eq!(status, 200, "a reasonable allocation works");
    let before = host.rss_kib();
    for _ in 0..20 {
        let (status, body, _) = call(&host, "grow", json!({ "mb": 256 })).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("unavailable"))
        );
    }
    let (status, body, _) = call(&host, "recurse", json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
    host.wait_for_log(&["plugin trapped", "\"plugin\":\"probe\""]);
    let (status, _, _) = call(&host, "grow", json!({ "mb": 4 })).await;
    assert_eq!(status, 200, "the plugin still serves");
    let after = host.rss_kib();
    // 20 bombs touched 640 MiB between them; the host keeps at most one slot's worth.
    assert!(
        after < before + 48 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    eprintln!("host RSS {before} KiB before 20 memory bombs, {after} KiB after");
}

#[tokio::test]
async fn grants_are_enforced_at_run_time() {
    let host = probe_host("");
    // probe-http may call probe, not auth.
    let response = client()
        .post(host.url("/probe/call/auth/MakeAccessToken"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    host.wait_for_log(&["probe-http is not granted rpc to auth"]);
    // probe reads its granted config key, not another one.
    let (status, body, _) = call(&host, "config", json!({ "key": "greeting" })).await;
    assert_eq!((status, &body), (200, &json!({ "value": "hello" })));
    let (status, _, _) = call(&host, "config", json!({ "key": "secret" })).await;
    assert_eq!(status, 500);
}

#[tokio::test]
async fn a_corrupt_compile_cache_entry_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("cache");
    let start = || {
        HostBuilder::new()
            .plugins(&["probe-http"])
            .config("[[route]]\npath = \"/probe/{*rest}\"\nplugin = \"probe-http\"\n[plugin.probe-http]\nrpc = [\"probe\"]\n")
            .cache_dir(&cache_dir)
            .start()
    };
    let host = start();
    host.stop();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cache_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the cache folder is private");
    let entries: Vec<_> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // One per engine: a WASI 0.2 HTTP component is compiled for both.
    assert_eq!(entries.len(), 2, "{entries:?}");
    for entry in &entries {
        std::fs::write(entry, b"not a compiled component").unwrap();
    }

    let host = start();
    host.wait_for_log(&["corrupt compile cache entry"]);
    let hello = client().get(host.url("/probe/hello")).send().await.unwrap();
    assert_eq!(hello.status(), 200);
    for entry in &entries {
        assert_ne!(std::fs::read(entry).unwrap(), b"not a compiled component");
    }
}

#[tokio::test]
async fn a_request_transaction_commits_or_rolls_back_with_the_request() {
    let host = probe_host("");
    let count = |key: &'static str| {
        let host = &host;
        async move { call(host, "count", json!({ "key": key })).await.1["count"].clone() }
    };
    for (key, then, status) in [
        ("committed", "commit", 200),
        ("rolled-back", "rollback", 200),
        ("trapped", "trap", 503),
        ("left-open", "leave", 200),
    ] {
        let (got, body, _) = call(&host, "tx", json!({ "key": key, "then": then })).await;
        assert_eq!(got, status, "{then}: {body}");
    }
    assert_eq!(count("committed").await, 1);
    assert_eq!(count("rolled-back").await, 0);
    assert_eq!(
        count("trapped").await,
        0,
        "a trap rolls the transaction back"
    );
    assert_eq!(count("left-open").await, 0, "no commit, no row");
}

/// `limits.field_bytes` holds the header fields a guest builds: a response header past it
/// fails that response (500), one within it goes out, and the default admits it.
#[tokio::test]
async fn a_plugin_is_held_to_its_field_bytes() {
    let big_header = async |host: &TestHost, bytes: usize| {
        let response = client()
            .post(host.url("/probe/big-header"))
            .body(bytes.to_string())
            .send()
            .await
            .unwrap();
        let size = response.headers().get("x-big").map_or(0, |v| v.len());
        (response.status().as_u16(), size)
    };
    let held = probe_host("[plugins.limits]\nfield_bytes = 4096\n");
    assert_eq!(big_header(&held, 1000).await, (200, 1000));
    let (status, size) = big_header(&held, 8000).await;
    println!("8000-byte header with field_bytes = 4096: {status}");
    assert_eq!((status, size), (500, 0));
    let default = probe_host("");
    assert_eq!(big_header(&default, 8000).await, (200, 8000));
}
