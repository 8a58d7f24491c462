//! Hostile plugins (issue 17): each test makes one attack that a plugin, or what a plugin
//! can write, could make on a real host (real components, real connections, real databases)
//! and checks that the host holds: a stored argon2 hash asking for 4 TiB, a query returning
//! millions of rows, SQLite writing files, oversized messages, native code planted in the
//! compile cache, outbound HTTP to loopback spelled as IPv6, credentials shown by the admin
//! API or echoed by a startup error, SQL breaking out of the PostgreSQL rewriter, and a
//! token a plugin signs for itself used as an access token.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{
    HostBuilder, PROBES, ScratchDatabase, TestHost, admin_json, argon2id, client, component, login,
    probe_call,
};
use serde_json::{Value, json};

fn probes() -> HostBuilder {
    HostBuilder::new()
        .plugins(&["probe", "probe-http"])
        .config(PROBES)
}

/// The probe's `sql` method: `{"ok": ...}` or `{"error": kind, "message"}`.
async fn sql(host: &TestHost, statement: &str, params: Value, execute: bool) -> Value {
    let answer = probe_call(
        host,
        "sql",
        json!({ "sql": statement, "params": params, "execute": execute }),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

#[tokio::test]
async fn a_stored_hash_with_huge_argon2_parameters_fails_its_login_and_the_host_lives() {
    let mut host = HostBuilder::seed()
        .plugins(&["probe", "probe-http"])
        .config(PROBES)
        .start();
    // Written as any plugin granted sql could: m = 4 TiB of memory, t = 2^32 passes.
    let honest = argon2id("pw");
    for (user_id, name, from, to) in [
        (20001, "mallory", "m=19456", "m=4294967295"),
        (20002, "trudy", "t=2", "t=4294967295"),
    ] {
        let hostile = honest.replacen(from, to, 1);
        let written = sql(
            &host,
            "INSERT INTO `user` (`user_id`, `user_name`, `pwd`) VALUES (?, ?, ?)",
            json!([user_id, name, hostile]),
            true,
        )
        .await;
        assert_eq!(written, json!({ "ok": 1 }));
        let started = Instant::now();
        let (status, body) = login(&host, &format!("userName={name}&pwd=pw")).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert!(started.elapsed() < Duration::from_secs(2), "{name}");
    }
    assert!(host.is_running());
    assert_eq!(login(&host, "userName=micro&pwd=123").await.0, 200);
    host.wait_for_log(&["asks more than the argon2 caps"]);
}

/// Counts from 1 to the first parameter, each row with the second parameter beside it.
const COUNTING: &str = "WITH RECURSIVE `c`(`x`) AS (SELECT 1 UNION ALL SELECT `x` + 1 FROM `c` WHERE `x` < ?) SELECT `x`, ? AS `t` FROM `c`";

/// Runs [`COUNTING`] up to `n` with `text`: the row count, or the error's kind and message.
async fn count_rows(host: &TestHost, n: u64, text: &str) -> Result<usize, (String, String)> {
    let answer = sql(host, COUNTING, json!([n, text]), false).await;
    match answer["ok"]["rows"].as_array() {
        Some(rows) => Ok(rows.len()),
        None => Err((
            answer["error"].as_str().unwrap_or_default().to_string(),
            answer["message"].as_str().unwrap_or_default().to_string(),
        )),
    }
}

/// `Err` of [`count_rows`] with kind `invalid` and a message naming `key`.
fn refused_by(result: Result<usize, (String, String)>, key: &str) {
    match result {
        Err((kind, message)) if kind == "invalid" && message.contains(key) => {}
        other => panic!("expected invalid naming {key}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_query_past_the_row_or_byte_cap_fails_invalid_as_it_streams() {
    let host = probes().start();
    // Millions of rows: refused at the cap, not after the database produced them all.
    let before = host.rss_kib();
    let started = Instant::now();
    refused_by(count_rows(&host, 5_000_000, "").await, "sql_max_rows");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let grown = host.rss_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "the host grew by {grown} KiB");
    // The defaults: 10,000 rows, 16 MiB.
    assert_eq!(count_rows(&host, 10_000, "").await, Ok(10_000));
    refused_by(count_rows(&host, 10_001, "").await, "sql_max_rows");
    refused_by(
        count_rows(&host, 9_000, &"x".repeat(2000)).await,
        "sql_max_bytes",
    );

    // A plugin's own caps; each row is 8 + 500 bytes: 8 fit in 4096, 9 do not.
    let own_caps = PROBES.replace(
        "sql = true\n",
        "sql = true\nsql_max_rows = 100\nsql_max_bytes = 4096\n",
    );
    let host = HostBuilder::new()
        .plugins(&["probe", "probe-http"])
        .config(&own_caps)
        .start();
    assert_eq!(count_rows(&host, 100, "").await, Ok(100));
    refused_by(count_rows(&host, 101, "").await, "sql_max_rows");
    let text = "x".repeat(500);
    assert_eq!(count_rows(&host, 8, &text).await, Ok(8));
    refused_by(count_rows(&host, 9, &text).await, "sql_max_bytes");
}

#[tokio::test]
async fn sqlite_attach_vacuum_into_and_load_extension_are_refused() {
    let host = probes().start();
    let target = tempfile::tempdir().unwrap();
    let x = target.path().join("x.db");
    let y = target.path().join("y.db");
    for statement in [
        format!("ATTACH DATABASE '{}' AS `x`", x.display()),
        // Comments, case and quoting change nothing: SQLite's authorizer sees the statement.
        format!("/* hi */ aTTach  '{}' as \"x2\" -- bye", x.display()),
        format!("VACUUM INTO '{}'", y.display()),
        "SELECT load_extension('/nonexistent/evil')".to_string(),
    ] {
        let answer = sql(&host, &statement, json!([]), true).await;
        assert_eq!(answer["error"], "invalid", "{statement}: {answer}");
        let message = answer["message"].as_str().unwrap();
        // SQLite's "not authorized" or "authorization denied", never a syntax error.
        assert!(message.contains("authoriz"), "{statement}: {message}");
    }
    let created: Vec<_> = std::fs::read_dir(target.path()).unwrap().collect();
    assert!(created.is_empty(), "files appeared: {created:?}");
    // Everything else still works, plain VACUUM (SQLite's own temporary database) included.
    let answer = sql(&host, "SELECT 1 AS `one`", json!([]), false).await;
    assert_eq!(answer["ok"]["rows"], json!([[1]]), "{answer}");
    let vacuum = sql(&host, "VACUUM", json!([]), true).await;
    assert!(vacuum["ok"].is_number(), "{vacuum}");
}

/// The `user.login` events `/admin/broker` counts as published.
async fn published(host: &TestHost) -> Value {
    admin_json(host, "/admin/broker").await["stats"]["published"].clone()
}

/// Lets user names of any length past the front's login limiter.
const LONG_NAMES: &str = "[login_limit]\nmax_user_chars = 1000000\n";

#[tokio::test]
async fn a_publish_over_its_topic_size_cap_is_invalid() {
    // The seed's user-api publishes every login attempt with the user name a client sent:
    // up to the 1 MiB body limit, a thousand of them queued, without a cap. The front's
    // login limiter refuses names past 20 characters before the plugin sees them, so it
    // is opened wide here: this test is about the plugin's own publish.
    let default = HostBuilder::seed().config(LONG_NAMES).start();
    check_event_cap(&default, 60_000, 70_000).await;
    let own_cap = HostBuilder::seed()
        .config(LONG_NAMES)
        .config("[broker.topic.\"user.login\"]\nmax_message_bytes = 1024\n")
        .start();
    check_event_cap(&own_cap, 500, 2_000).await;
}

/// A login with a name of `fits` characters publishes its event, one of `over` does not.
async fn check_event_cap(host: &TestHost, fits: usize, over: usize) {
    for chars in [fits, over] {
        let (status, _) = login(host, &format!("userName={}&pwd=x", "x".repeat(chars))).await;
        assert_eq!(status, 401);
        assert_eq!(published(host).await, 1, "{chars} characters");
    }
    let refused = host.wait_for_log(&["login event not published", "Invalid"]);
    assert!(refused.contains("max_message_bytes"), "{refused}");
}

/// Serves `GET /probe/hello` through probe-http with `cache` as its compile cache: the
/// answer, and the host (for its log).
async fn probe_hello_with_cache(cache: &std::path::Path) -> (String, TestHost) {
    let host = HostBuilder::new()
        .plugins(&["probe-http"])
        .config(PROBES)
        .cache_dir(cache)
        .start();
    let response = client().get(host.url("/probe/hello")).send().await;
    (response.unwrap().text().await.unwrap(), host)
}

#[tokio::test]
async fn native_code_planted_in_the_compile_cache_is_never_loaded() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    // A real entry, of another component (`hello` answers `hello` to everything) ...
    let warm = HostBuilder::new()
        .plugins(&["hello"])
        .cache_dir(&cache)
        .start();
    warm.wait_for_log(&["plugin loaded", "hello"]);
    warm.stop();
    // One entry per engine: a WASI 0.2 HTTP component is compiled for both.
    let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    // ... planted under the names of probe-http's, for each engine.
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(
        std::fs::read(component("probe-http")).unwrap(),
    ));
    let planted: Vec<_> = entries
        .iter()
        .map(|entry| {
            let name = entry.file_name().to_str().unwrap().to_string();
            let engine_key = name.split_once('-').unwrap().1.to_string();
            (entry.path(), cache.join(format!("{digest}-{engine_key}")))
        })
        .collect();
    let plant = |mode: u32| {
        for (hello_entry, planted) in &planted {
            std::fs::copy(hello_entry, planted).unwrap();
            std::fs::set_permissions(planted, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    let real = "hello from probe-http";

    // A folder others may write to is not used at all.
    plant(0o600);
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (answer, host) = probe_hello_with_cache(&cache).await;
    assert_eq!(answer, real, "the planted code ran");
    host.wait_for_log(&[
        "compile cache folder refused",
        "writable by group or others",
    ]);
    drop(host);

    // In a private folder, an entry others may write to is recompiled and replaced.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    plant(0o666);
    let (answer, host) = probe_hello_with_cache(&cache).await;
    assert_eq!(answer, real, "the planted code ran");
    host.wait_for_log(&["compile cache entry refused", "mode 666"]);
    drop(host);
    for (_, planted) in &planted {
        let mode = std::fs::metadata(planted).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the entry was rewritten privately");
    }

    // Another user's entry, where the test may hand one over (as root).
    plant(0o600);
    let handed_over = planted
        .iter()
        .all(|(_, planted)| std::os::unix::fs::chown(planted, Some(65534), Some(65534)).is_ok());
    if handed_over {
        let (answer, host) = probe_hello_with_cache(&cache).await;
        assert_eq!(answer, real, "the planted code ran");
        host.wait_for_log(&["compile cache entry refused", "owned by uid 65534"]);
    } else {
        eprintln!("SKIPPED the other-owner case: chown needs root");
    }
}

/// A loopback server answering `pong` to every request, on a thread of its own.
fn pong_server() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong",
            );
        }
    });
    port
}

#[tokio::test]
async fn a_wildcard_grant_reaches_no_loopback_address_in_any_spelling() {
    let port = pong_server();
    // Wildcards that match loopback written as IPv4 and as IPv4-mapped IPv6, and one
    // destination granted literally (the control: the server answers).
    let host = HostBuilder::new()
        .plugins(&["probe-http"])
        .config(&format!(
            "[[route]]\npath = \"/probe/{{*rest}}\"\nplugin = \"probe-http\"\n\n[plugin.probe-http]\nrpc = [\"probe\"]\nhttp = [\"http://*.0.0.1:*\", \"http://*.0.0.1]:*\", \"http://localhost:{port}\"]\n"
        ))
        .start();
    let fetch = |url: String| {
        let host = &host;
        async move {
            let response = client()
                .post(host.url("/probe/fetch"))
                .body(url)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = fetch(format!("http://localhost:{port}/")).await;
    assert_eq!((status, &body["body"]), (200, &json!("pong")), "{body}");
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
    ] {
        let (status, body) = fetch(url.clone()).await;
        assert_eq!(status, 502, "{url} was reached: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("HttpRequestDenied"), "{url}: {body}");
    }
}

#[tokio::test]
async fn credentials_inside_urls_never_reach_the_admin_config() {
    let host = probes()
        .env("MICRO_API__BROKER__URL", "nats://alice:nats-pass-1@127.0.0.1:4222")
        .env(
            "MICRO_API__REGISTRY__ENDPOINTS",
            "[\"http://root:etcd-pass-2@127.0.0.1:2379\"]",
        )
        .env(
            "MICRO_API__TELEMETRY__OTLP_ENDPOINT",
            "http://otel:otlp-pass-3@127.0.0.1:9/?token=otlp-token-4",
        )
        .config(
            "[plugin.probe.env]\nDATABASE = \"postgres://app:env-pass-5@db/app\"\nAPI = \"https://api.example.com/v1?api_key=env-key-6&region=eu\"\n",
        )
        .start();
    let config = admin_json(&host, "/admin/config").await;
    let value = |key: &str| {
        config["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["key"] == key)
            .map(|v| v["value"].clone())
            .unwrap_or_else(|| panic!("no {key} in {config}"))
    };
    assert_eq!(value("broker/url"), "nats://<secret>@127.0.0.1:4222");
    assert_eq!(
        value("registry/endpoints"),
        json!(["http://<secret>@127.0.0.1:2379"])
    );
    assert_eq!(
        value("telemetry/otlp_endpoint"),
        "http://<secret>@127.0.0.1:9/?token=<secret>"
    );
    assert_eq!(
        value("plugin/probe/env/DATABASE"),
        "postgres://<secret>@db/app"
    );
    assert_eq!(
        value("plugin/probe/env/API"),
        "https://api.example.com/v1?api_key=<secret>&region=eu"
    );
    let shown = config.to_string();
    for secret in ["pass-1", "pass-2", "pass-3", "token-4", "pass-5", "key-6"] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
}

#[test]
fn a_secret_from_the_environment_is_never_echoed_by_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "data_dir = \"data\"\n").unwrap();
    // All digits: read as TOML, each would be an integer, and a type error would quote it.
    let secrets = [
        ("MICRO_API__CLUSTER__SECRET", "1234567890123456"),
        ("MICRO_API__ADMIN__TOKEN", "98765432109876543"),
        ("MICRO_API__PLUGIN__PROBE__SECRETS__API_KEY", "4242424242"),
    ];
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_micro-api"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .envs(secrets)
        // What makes the start fail, so that there is an error to read.
        .env("MICRO_API__SERVER__BODY_LIMIT", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&[output.stdout, output.stderr].concat()).into_owned();
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("body_limit"),
        "the real problem is named: {text}"
    );
    for (name, secret) in secrets {
        assert!(!text.contains(secret), "{name} echoed: {text}");
    }
}

#[tokio::test]
async fn backtick_and_dollar_quotes_round_trip_on_postgres() {
    let Some(admin) = std::env::var("MICRO_API_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("SKIPPED: set MICRO_API_TEST_POSTGRES_URL to run it");
        return;
    };
    let db = ScratchDatabase::create("postgres", &admin).await;
    let host = probes().database(Some(&db.url)).start();
    let cases = [
        // A `"` inside a backtick identifier stays inside it: one column, oddly named.
        (
            "SELECT 1 AS `a\" , 2 AS \"b`",
            json!([]),
            json!({ "columns": ["a\" , 2 AS \"b"], "rows": [[1]] }),
        ),
        (
            "SELECT $$it's ?$$ AS `v`, ? AS `w`",
            json!([7]),
            json!({ "columns": ["v", "w"], "rows": [["it's ?", 7]] }),
        ),
        (
            "SELECT $q$ a ? b $$ 'c $q$ AS `v`, ? AS `w`",
            json!([8]),
            json!({ "columns": ["v", "w"], "rows": [[" a ? b $$ 'c ", 8]] }),
        ),
    ];
    for (statement, params, expected) in cases {
        let answer = sql(&host, statement, params, false).await;
        assert_eq!(answer, json!({ "ok": expected }), "{statement}");
    }
    drop(host);
    db.drop_database().await;
}

/// `signer` (a service that signs, verifies and hashes whatever it is sent) called through
/// probe-http: the status and the answer's text.
async fn signer(host: &TestHost, method: &str, payload: &str) -> (u16, String) {
    let response = client()
        .post(host.url(&format!("/probe/call/signer/{method}")))
        .body(payload.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A plugin granted tokens for its own ends signs micro's claims; the front door must not
/// take that token as micro's access token. Each grant allows only its own use.
#[tokio::test]
async fn a_token_a_plugin_signs_for_itself_opens_no_route_and_grants_are_split() {
    let host = HostBuilder::seed()
        .plugins(&["probe-http", "signer"])
        .config(
            "[[route]]\npath = \"/user/profile\"\nmethods = [\"GET\"]\nplugin = \"user-api\"\nauth = \"required\"\n\n[[route]]\npath = \"/probe/{*rest}\"\nplugin = \"probe-http\"\n\n[plugin.probe-http]\nrpc = [\"signer\"]\n\n[plugin.signer]\ncrypto = [\"tokens\"]\n",
        )
        .start();
    let micro = r#"{"sub":"10001","uid":10001,"name":"micro","purpose":"access"}"#;
    let (status, token) = signer(&host, "sign", micro).await;
    assert_eq!(status, 200, "a tokens grant signs: {token}");
    let profile = client()
        .get(host.url("/user/profile"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, body) = (profile.status().as_u16(), profile.text().await.unwrap());
    println!("a plugin's own token at the front door: {status} {body}");
    assert_eq!(
        status, 401,
        "a plugin's own token is no access token: {body}"
    );
    // The plugin reads its own token back, with the host's purpose, not the one it wrote.
    let (status, claims) = signer(&host, "verify", &token).await;
    assert_eq!(status, 200, "{claims}");
    assert!(claims.contains(r#""purpose":"plugin:signer""#), "{claims}");
    // `tokens` does not hash passwords.
    let (status, answer) = signer(&host, "hash", "123").await;
    println!("hash with a tokens grant: {status} {answer}");
    assert_ne!(status, 200, "{answer}");
    host.wait_for_log(&[
        "signer is not granted crypto passwords",
        "to `crypto` in [plugin.signer]",
    ]);
    // The real login still works: auth signs access tokens the front door accepts.
    let (status, body) = login(&host, "userName=micro&pwd=123").await;
    assert_eq!(status, 200, "{body}");
    let access = body["token"].as_str().unwrap();
    let profile = client()
        .get(host.url("/user/profile"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), 200);
}

/// `crypto = ["passwords"]` hashes and cannot sign.
#[tokio::test]
async fn a_passwords_grant_hashes_and_cannot_sign() {
    let host = HostBuilder::new()
        .plugins(&["probe-http", "signer"])
        .config(
            "[[route]]\npath = \"/probe/{*rest}\"\nplugin = \"probe-http\"\n\n[plugin.probe-http]\nrpc = [\"signer\"]\n\n[plugin.signer]\ncrypto = [\"passwords\"]\n",
        )
        .start();
    let (status, hash) = signer(&host, "hash", "123").await;
    assert_eq!(status, 200, "{hash}");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let (status, answer) = signer(&host, "sign", r#"{"sub":"1"}"#).await;
    println!("sign with a passwords grant: {status} {answer}");
    assert_ne!(status, 200, "{answer}");
    host.wait_for_log(&[
        "signer is not granted crypto tokens",
        "to `crypto` in [plugin.signer]",
    ]);
}
