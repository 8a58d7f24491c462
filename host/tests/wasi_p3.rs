//! WASI 0.3 components and reused instances (issue 14), from outside: components nobody
//! here wrote (the Spin SDK's README example, a `wasip3` hello, the `wasip2` crate's
//! `http-proxy` example; `test-plugins/foreign/`) are served beside the seed's; a WASI 0.2
//! plugin keeps a fresh instance per request unless it opts in; a WASI 0.3 instance serves
//! requests concurrently; a trap, a loop or a memory bomb on a reused instance fails the
//! requests on that instance alone, at once; two users on one instance each see their own
//! claims; and the admin API shows instances alive, idle and reused.

mod common;

use std::time::{Duration, Instant};

use common::{HostBuilder, PROBES, TEST_SIGNING_KEY, TestHost, admin_json, client};
use serde_json::{Value, json};

/// `name`'s entry in `/admin/plugins`.
async fn plugin_entry(host: &TestHost, name: &str) -> Value {
    let plugins = admin_json(host, "/admin/plugins").await;
    plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} not loaded: {plugins}"))
        .clone()
}

async fn get(host: &TestHost, path: &str) -> (u16, String) {
    let response = client().get(host.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

const FOREIGN: &str = r#"
[[route]]
path = "/spin"
plugin = "spin-hello"

[[route]]
path = "/wasip3"
plugin = "wasip3-hello"

[[route]]
path = "/proxy"
plugin = "wasip2-proxy"

[plugin.wasip2-proxy]
reuse = true
"#;

#[tokio::test]
async fn components_built_by_others_for_wasi_03_and_02_are_served_beside_the_seed() {
    let host = HostBuilder::seed()
        .plugins(&["spin-hello", "wasip3-hello", "wasip2-proxy"])
        .config(FOREIGN)
        .start();
    for _ in 0..3 {
        let (status, body) = get(&host, "/spin").await;
        assert_eq!((status, body.trim()), (200, "Hello, Spin!"));
        let (status, body) = get(&host, "/wasip3").await;
        assert_eq!((status, body.trim()), (200, "Hello, WASI!"));
        let (status, _) = get(&host, "/proxy").await;
        assert_eq!(status, 200, "the wasip2 http-proxy example");
    }
    let (status, login) = common::login(&host, "userName=micro&pwd=123").await;
    assert_eq!(status, 200, "the seed still logs in: {login}");

    let spin = plugin_entry(&host, "spin-hello").await;
    assert_eq!(spin["http_export"], "wasi:http/handler@0.3", "{spin}");
    assert_eq!(
        spin["instances"]["reuse"]["requests"], 128,
        "0.3 reuses by default: {spin}"
    );
    assert!(spin["instances"]["reuses"].as_u64().unwrap() >= 2, "{spin}");
    let proxy = plugin_entry(&host, "wasip2-proxy").await;
    assert_eq!(
        proxy["http_export"], "wasi:http/incoming-handler@0.2",
        "{proxy}"
    );
    assert_eq!(
        proxy["instances"]["reuse"]["concurrent"], 1,
        "0.2 reuse is serial: {proxy}"
    );
    assert!(
        proxy["instances"]["reuses"].as_u64().unwrap() >= 2,
        "{proxy}"
    );
    let user_api = plugin_entry(&host, "user-api").await;
    assert_eq!(
        user_api["instances"]["reuse"],
        Value::Null,
        "0.2 is fresh by default"
    );
}

#[tokio::test]
async fn a_wasi_02_counter_is_fresh_on_every_request_until_reuse_is_switched_on() {
    let host = HostBuilder::new()
        .plugins(&["probe-http", "probe"])
        .config(PROBES)
        .start();
    for _ in 0..3 {
        assert_eq!(
            get(&host, "/probe/counter").await,
            (200, "1".into()),
            "fresh by default"
        );
    }
    let text = std::fs::read_to_string(&host.config_path).unwrap();
    let text = text.replace(
        "[plugin.probe-http]\n",
        "[plugin.probe-http]\nreuse = true\n",
    );
    std::fs::write(&host.config_path, text).unwrap();
    host.wait_for_log(&["config change applied"]);
    let mut counts = Vec::new();
    for _ in 0..4 {
        let (status, body) = get(&host, "/probe/counter").await;
        assert_eq!(status, 200);
        counts.push(body.trim().parse::<u64>().unwrap());
    }
    assert_eq!(
        counts,
        [1, 2, 3, 4],
        "one instance served them one after another"
    );
}

/// probe-p3 routed under /p3 with `extra` in its section.
fn probe_p3(extra: &str) -> String {
    format!(
        "[[route]]\npath = \"/p3/{{*rest}}\"\nplugin = \"probe-p3\"\n\n[plugin.probe-p3]\n{extra}\n"
    )
}

#[tokio::test]
async fn one_wasi_03_instance_serves_requests_at_once() {
    let host = HostBuilder::new()
        .plugins(&["probe-p3"])
        .config(&probe_p3(""))
        .start();
    assert_eq!(get(&host, "/p3/hello").await.0, 200);
    // Arrivals 50 ms apart: each finds the one instance waiting (its requests asleep), so
    // it takes them all, at once.
    let started = Instant::now();
    let sleeps = (0..8u64).map(|i| {
        let url = host.url("/p3/sleep?ms=600");
        async move {
            tokio::time::sleep(Duration::from_millis(50 * i)).await;
            get_owned(url).await
        }
    });
    for (status, body) in futures::future::join_all(sleeps).await {
        assert_eq!((status, body.trim()), (200, "slept"));
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2000),
        "they overlapped: {took:?}"
    );
    let entry = plugin_entry(&host, "probe-p3").await;
    let instances = &entry["instances"];
    assert_eq!(instances["alive"], 1, "one instance served them: {entry}");
    assert_eq!(instances["reuses"], 8, "{entry}");
}

#[tokio::test]
async fn a_trap_fails_the_requests_on_its_instance_at_once_and_the_next_gets_another() {
    let host = HostBuilder::new()
        .plugins(&["probe-p3"])
        .config(&probe_p3("reuse = { max_alive = 1 }"))
        .start();
    assert_eq!(get(&host, "/p3/hello").await.0, 200);
    let started = Instant::now();
    let sleepers: Vec<_> = (0..3)
        .map(|_| tokio::spawn(get_owned(host.url("/p3/sleep?ms=3000"))))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&host, "/p3/trap").await.0, 500);
    for sleeper in sleepers {
        let (status, _) = sleeper.await.unwrap();
        assert_eq!(status, 500, "in flight on the trapped instance");
    }
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "at once, not at their end"
    );
    assert_eq!(get(&host, "/p3/hello").await, (200, "Hello, WASI!".into()));
    let entry = plugin_entry(&host, "probe-p3").await;
    assert_eq!(
        entry["traps"], 4,
        "each request on the instance failed once: {entry}"
    );
}

async fn get_owned(url: String) -> (u16, String) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_loop_meets_its_deadline_and_a_memory_bomb_its_limit_on_a_reused_instance() {
    let host = HostBuilder::new()
        .plugins(&["probe-p3"])
        .config(&probe_p3("limits = { deadline_ms = 700, memory_mb = 32 }"))
        .start();
    assert_eq!(get(&host, "/p3/hello").await.0, 200);
    let started = Instant::now();
    assert_eq!(get(&host, "/p3/loop").await.0, 504);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2000),
        "stopped at its deadline: {took:?}"
    );
    assert_eq!(
        get(&host, "/p3/hello").await.0,
        200,
        "another instance serves"
    );
    assert_eq!(get(&host, "/p3/alloc").await.0, 500);
    assert_eq!(
        get(&host, "/p3/hello").await.0,
        200,
        "another instance serves"
    );
    let entry = plugin_entry(&host, "probe-p3").await;
    assert_eq!(entry["deadline_kills"], 1, "{entry}");
    assert_eq!(entry["traps"], 1, "{entry}");
}

fn token_for(uid: u64, name: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = json!({
        "sub": uid.to_string(), "uid": uid, "name": name,
        "iss": "micro-api", "aud": "micro-api", "iat": now - 60, "exp": now + 600,
        "purpose": "access",
    });
    let key = jsonwebtoken::EncodingKey::from_secret(TEST_SIGNING_KEY.as_bytes()).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

#[tokio::test]
async fn two_users_at_once_on_one_instance_each_see_their_own_claims() {
    let config = probe_p3("reuse = { max_alive = 1 }").replace(
        "plugin = \"probe-p3\"\n",
        "plugin = \"probe-p3\"\nauth = \"required\"\n",
    );
    let host = HostBuilder::new()
        .plugins(&["probe-p3"])
        .config(&config)
        .start();
    let users = [(10001, "micro"), (10002, "other")];
    let requests = (0..20).map(|i| {
        let (uid, name) = users[i % 2];
        let request = client()
            .get(host.url("/p3/claims"))
            .bearer_auth(token_for(uid, name))
            .send();
        async move {
            let response = request.await.unwrap();
            assert_eq!(response.status(), 200);
            (uid, response.text().await.unwrap())
        }
    });
    for (uid, echoed) in futures::future::join_all(requests).await {
        let other = if uid == 10001 { 10002 } else { 10001 };
        assert!(echoed.contains(&format!("\"uid\":{uid}")), "{echoed}");
        assert!(!echoed.contains(&format!("\"uid\":{other}")), "{echoed}");
    }
    let entry = plugin_entry(&host, "probe-p3").await;
    assert!(
        entry["instances"]["reuses"].as_u64().unwrap() >= 10,
        "{entry}"
    );
}

/// `name`'s reused instances alive, from the admin API.
async fn alive(host: &TestHost, name: &str) -> i64 {
    plugin_entry(host, name).await["instances"]["alive"]
        .as_i64()
        .unwrap()
}

/// Sends bursts of concurrent requests to `path` until `name` has `n` instances alive.
async fn fill(host: &TestHost, name: &str, path: &str, n: i64) {
    for _ in 0..20 {
        let burst = (0..32).map(|_| get(host, path));
        for (status, _) in futures::future::join_all(burst).await {
            assert_eq!(status, 200);
        }
        if alive(host, name).await == n {
            return;
        }
    }
    panic!("{name} never had {n} instances alive");
}

const LONG_LIVED_HELLO: &str = r#"
[[route]]
path = "/hello"
plugin = "hello"

[plugin.hello]
reuse = { idle_ms = 60000, max_alive = 2 }
"#;

#[tokio::test]
async fn idle_instances_give_their_pool_slots_back_before_a_request_is_refused() {
    // Each engine has its own pool, and reused instances all live in the concurrent
    // engine's: probe-http reuses too, so it needs a slot of the pool hello holds.
    let probes = PROBES.replace(
        "limits = { deadline_ms = 10000 }",
        "limits = { deadline_ms = 10000 }\nreuse = { idle_ms = 1000 }",
    );
    let config = format!("{LONG_LIVED_HELLO}\n{probes}\n[plugins.pool]\ninstances = 2\n");
    let host = HostBuilder::new()
        .plugins(&["hello", "probe-http", "probe"])
        .config(&config)
        .start();
    fill(&host, "hello", "/hello", 2).await;
    // Both slots of the pool hold idle hello instances for a minute; probe-http needs one.
    assert_eq!(
        get(&host, "/probe/hello").await,
        (200, "hello from probe-http".into())
    );
    assert!(alive(&host, "hello").await < 2, "an idle one was evicted");
}

#[tokio::test]
async fn a_full_pool_on_the_fresh_path_answers_503_not_500() {
    // Two slots per engine (the least allowed): two spinning fresh probe-http requests hold
    // the sync engine's both until their 3 s deadline, so the next fresh one finds no room.
    let probes = PROBES.replace("deadline_ms = 10000", "deadline_ms = 3000");
    let host = HostBuilder::new()
        .plugins(&["probe-http", "probe"])
        .config(&format!("{probes}\n[plugins.pool]\ninstances = 2\n"))
        .start();
    let spinning: Vec<_> = (0..2)
        .map(|_| tokio::spawn(client().get(host.url("/probe/spin")).send()))
        .collect();
    let started = Instant::now();
    loop {
        let (status, body) = get(&host, "/probe/hello").await;
        if status == 503 {
            assert!(body.contains("plugin_unavailable"), "{body}");
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the spinning requests never held both slots"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for spinner in spinning {
        assert_eq!(spinner.await.unwrap().unwrap().status(), 504);
    }
    assert_eq!(
        get(&host, "/probe/hello").await.0,
        200,
        "the slot came back"
    );
}

#[tokio::test]
async fn a_reload_ends_the_old_versions_idle_instances_at_once() {
    let host = HostBuilder::new()
        .plugins(&["hello"])
        .config(LONG_LIVED_HELLO)
        .start();
    assert_eq!(get(&host, "/hello").await.0, 200);
    assert_eq!(alive(&host, "hello").await, 1, "idle for a minute");
    // A new version of `hello` (another component under its name).
    std::fs::copy(
        common::component("greeter-v1"),
        host.plugins_dir().join("hello.wasm"),
    )
    .unwrap();
    let started = Instant::now();
    while alive(&host, "hello").await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the old instance lingers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
