//! The gateway as the front door, against a real host over real HTTP: protected routes and
//! forged tokens, brute-force limits on the login (across a plugin reload), the admin
//! token, and slow, oversized and too many clients.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{
    HostBuilder, PROBES, TEST_SIGNING_KEY, TestHost, argon2id, client, component, login, sqlite_url,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use micro_api::sql::Value as SqlValue;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SEED_LOGIN: &str = "userName=micro&pwd=123";

const PROFILE_ROUTE: &str = r#"
[[route]]
path = "/user/profile"
methods = ["GET"]
plugin = "user-api"
auth = "required"
"#;

/// The claims `auth` puts in micro's token, expiring `ttl` seconds from now.
fn micro_claims(ttl: i64) -> Value {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    json!({
        "sub": "10001", "uid": 10001, "name": "micro",
        "iss": "micro-api", "aud": "micro-api", "iat": now - 60, "exp": now + ttl,
        "purpose": "access",
    })
}

fn sign(claims: &Value, key: &str, algorithm: Algorithm) -> String {
    let key = EncodingKey::from_secret(key.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(algorithm), claims, &key).unwrap()
}

/// `GET /user/profile` with these extra headers: status, `WWW-Authenticate`, JSON body.
async fn profile(host: &TestHost, headers: &[(&str, String)]) -> (u16, String, Value) {
    let mut request = client().get(host.url("/user/profile"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, challenge, response.json().await.unwrap_or_default())
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

async fn admin_front(host: &TestHost) -> Value {
    common::admin_json(host, "/admin/front").await
}

/// The headers probe-http was handed for a `GET /probe/echo-headers` sent with `headers`.
async fn echoed_headers(host: &TestHost, headers: &[(&str, &str)]) -> Value {
    let mut request = client().get(host.url("/probe/echo-headers"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn the_profile_answers_a_valid_token_only() {
    let host = HostBuilder::seed()
        .plugins(&["probe-http"])
        .config(PROFILE_ROUTE)
        .config(PROBES)
        .start();
    let (status, body) = login(&host, SEED_LOGIN).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    let micro = json!({ "id": 10001, "name": "micro" });

    let (status, _, body) = profile(&host, &[bearer(&token)]).await;
    assert_eq!((status, &body), (200, &micro));
    // Claims sent by the client are dropped: the verified ones are micro's.
    let forged = ("x-micro-api-claims", r#"{"name":"alice"}"#.to_string());
    let (status, _, body) = profile(&host, &[forged.clone(), bearer(&token)]).await;
    assert_eq!((status, &body), (200, &micro));

    let (head, rest) = token.split_once('.').unwrap();
    let signature = rest.rsplit_once('.').unwrap().1;
    let mut alice = micro_claims(600);
    alice["name"] = json!("alice");
    let unsigned = |header: Value| {
        format!(
            "{}.{}.",
            B64.encode(header.to_string()),
            B64.encode(micro_claims(600).to_string())
        )
    };
    let refused = [
        ("missing", None),
        (
            "expired",
            Some(sign(&micro_claims(-10), TEST_SIGNING_KEY, Algorithm::HS256)),
        ),
        (
            "tampered",
            Some(format!(
                "{head}.{}.{signature}",
                B64.encode(alice.to_string())
            )),
        ),
        ("alg none", Some(unsigned(json!({ "alg": "none" })))),
        (
            "alg none, typed",
            Some(unsigned(json!({ "alg": "none", "typ": "JWT" }))),
        ),
        (
            "wrong key",
            Some(sign(
                &micro_claims(600),
                "another-signing-key-0123456789abcdef",
                Algorithm::HS256,
            )),
        ),
        (
            "HS512 with the right key",
            Some(sign(&micro_claims(600), TEST_SIGNING_KEY, Algorithm::HS512)),
        ),
        ("garbage", Some("not-a-token".to_string())),
    ];
    for (what, token) in &refused {
        let mut headers = vec![forged.clone()];
        headers.extend(token.as_deref().map(bearer));
        let (status, challenge, body) = profile(&host, &headers).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
        assert!(challenge.starts_with("Bearer"), "{what}: {challenge:?}");
    }
    // Another scheme is no bearer token.
    let basic = ("authorization", "Basic bWljcm86MTIz".to_string());
    assert_eq!(profile(&host, &[basic]).await.0, 401);

    // An open route gets no claims, forged or not.
    let echoed = echoed_headers(&host, &[(forged.0, &forged.1)]).await;
    assert!(echoed.get("x-micro-api-claims").is_none(), "{echoed}");
    assert!(echoed.get("accept").is_some(), "the echo works: {echoed}");

    let front = admin_front(&host).await;
    assert!(
        front["front"]["unauthorized"].as_u64().unwrap() > refused.len() as u64,
        "{front}"
    );
}

#[tokio::test]
async fn the_headers_the_host_sets_are_never_the_clients() {
    let host = HostBuilder::new()
        .plugins(&["probe-http"])
        .config(PROBES)
        .start();
    // probe-http is routed as `/probe/{*rest}`.
    let echoed = echoed_headers(
        &host,
        &[
            ("x-micro-api-param-rest", "forged"),
            ("X-Micro-Api-Param-Rest", "forged twice"),
            ("x-micro-api-param-name", "forged"),
            ("x-micro-api-client-addr", "203.0.113.7"),
        ],
    )
    .await;
    assert_eq!(echoed["x-micro-api-param-rest"], "echo-headers", "{echoed}");
    assert!(echoed.get("x-micro-api-param-name").is_none(), "{echoed}");
    assert_eq!(echoed["x-micro-api-client-addr"], "127.0.0.1", "{echoed}");
}

/// `POST /user/login`: status, `Retry-After` in seconds, JSON body.
async fn login_answer(host: &TestHost, form: &str) -> (u16, Option<u64>, Value) {
    let answer = common::login_answer(host, form).await;
    let retry_after = answer.retry_after.map(|v| v.parse().unwrap());
    (answer.status, retry_after, answer.body)
}

/// Rewrites `file` in the host's plugins folder as `component` plus a custom section
/// holding `marker`: the same code under a new version, which the host reloads.
fn redeploy(host: &TestHost, component_name: &str, file: &str, marker: &[u8]) {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut bytes = std::fs::read(component(component_name)).unwrap();
    let name = b"micro-api-test";
    let mut section = Vec::new();
    leb128(name.len(), &mut section);
    section.extend_from_slice(name);
    section.extend_from_slice(marker);
    bytes.push(0); // a custom section
    leb128(section.len(), &mut bytes);
    bytes.extend(section);
    let dir = host.plugins_dir();
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(file)).unwrap();
}

#[tokio::test]
async fn failed_logins_are_limited_per_user_across_reloads_until_the_window_ends() {
    const WINDOW: u64 = 10;
    let host = HostBuilder::seed()
        .config(&format!(
            "[login_limit]\nmax_failures = 3\nmax_failures_per_address = 50\nwindow_secs = {WINDOW}\n"
        ))
        .start();
    let db = micro_api::sql::connect(&sqlite_url(&host), 1)
        .await
        .unwrap();
    db.execute(
        "INSERT INTO `user` (`user_id`, `user_name`, `pwd`) VALUES (?, ?, ?)",
        &[
            SqlValue::Integer(10002),
            SqlValue::Text("alice".into()),
            SqlValue::Text(argon2id("wonderland")),
        ],
    )
    .await
    .unwrap();

    let started = Instant::now();
    for attempt in 1..=3 {
        let (status, _, body) = login_answer(&host, "userName=micro&pwd=wrong").await;
        assert_eq!(status, 401, "attempt {attempt}: {body}");
        // Refused before the password is checked (400): the count stays as it was.
        if attempt < 3 {
            assert_eq!(login_answer(&host, "userName=micro").await.0, 400);
        }
    }
    // Over the limit: refused before the password is even checked, the right one too.
    let (status, retry_after, body) = login_answer(&host, SEED_LOGIN).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_requests");
    let retry_after = retry_after.expect("Retry-After");
    assert!((1..=WINDOW).contains(&retry_after), "{retry_after}");

    // Another user, from the same address, is not slowed.
    let (status, _, body) = login_answer(&host, "userName=alice&pwd=wonderland").await;
    assert_eq!(status, 200, "{body}");
    // A doubled field cannot count one name while the plugin checks another.
    let (status, _, _) = login_answer(&host, "userName=micro&userName=bob&pwd=123").await;
    assert_eq!(status, 429);

    // A new version of the login plugin: the counts are the host's, they stay.
    let before = host.plugin_stats("user-api").await["version"].clone();
    redeploy(&host, "user-api", "user_api.wasm", b"reload-1");
    let reloaded = Instant::now();
    while host.plugin_stats("user-api").await["version"] == before {
        assert!(
            reloaded.elapsed() < Duration::from_secs(20),
            "user-api was not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(WINDOW - 1),
        "the reload took the whole window; the test cannot tell"
    );
    assert_eq!(login_answer(&host, SEED_LOGIN).await.0, 429);

    // Once the window has passed, micro logs in again.
    let window_end = started + Duration::from_secs(WINDOW) + Duration::from_millis(300);
    tokio::time::sleep_until(window_end.into()).await;
    let (status, _, body) = login_answer(&host, SEED_LOGIN).await;
    assert_eq!(status, 200, "{body}");
    let front = admin_front(&host).await;
    assert!(
        front["front"]["logins_throttled"].as_u64().unwrap() >= 3,
        "{front}"
    );
    host.wait_for_log(&["429: too many failed logins"]);
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_token() {
    const TOKEN: &str = "test-admin-token-0123456789";
    let host = HostBuilder::seed().admin_token(TOKEN).start();
    let http = client();
    let endpoints = [
        (reqwest::Method::GET, "/admin/plugins", 200),
        (reqwest::Method::GET, "/admin/breakers", 200),
        (reqwest::Method::GET, "/admin/front", 200),
        (reqwest::Method::POST, "/admin/plugins/reload", 200),
        (
            reqwest::Method::POST,
            "/admin/plugins/user-api/rollback",
            409,
        ),
        (reqwest::Method::GET, "/admin/nope", 404),
    ];
    for (method, path, expected) in endpoints {
        let url = format!("{}{path}", host.admin);
        let refused = [
            http.request(method.clone(), &url),
            http.request(method.clone(), &url)
                .bearer_auth("test-admin-token-012345678"),
            http.request(method.clone(), &url)
                .bearer_auth(format!("{TOKEN}0")),
            http.request(method.clone(), &url)
                .basic_auth("admin", Some(TOKEN)),
        ];
        for request in refused {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
        }
        let response = host
            .admin_request(method.clone(), path)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            expected,
            "{method} {path} with the token"
        );
    }
    // Readiness tells a probe (which cannot send a token) its verdict, and only that.
    let ready_url = format!("{}/admin/health/ready", host.admin);
    let [ready, detailed] = [
        http.get(&ready_url),
        host.admin_request(reqwest::Method::GET, "/admin/health/ready"),
    ]
    .map(|request| async { request.send().await.unwrap().json::<Value>().await.unwrap() });
    assert_eq!(ready.await, serde_json::json!({ "ready": true }));
    let detailed = detailed.await;
    assert_eq!(detailed["database"], true, "{detailed}");
    // Liveness stays open for orchestrators.
    let live = http
        .get(format!("{}/admin/health/live", host.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    host.wait_for_log(&["401: admin request without the admin token"]);
    assert!(
        host.logs().iter().all(|line| !line.contains(TOKEN)),
        "the admin token was logged"
    );
}

/// Writes `at_once`, then `trickled` one byte every 50 ms (then `a`s), reading meanwhile,
/// until the server closes or 10 s pass: how long it took and what the server said.
async fn trickle(addr: &str, at_once: &[u8], trickled: &[u8]) -> (Duration, String) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(at_once).await.unwrap();
    let mut bytes = trickled.iter().copied().chain(std::iter::repeat(b'a'));
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still open after 10 s"
        );
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            _ = tick.tick() => {
                // The server may have closed already: the read says so next.
                let _ = stream.write_all(&[bytes.next().unwrap()]).await;
            }
        }
    }
    (
        started.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

/// One HTTP/1.1 request on a fresh connection, answer read up to the server's close or
/// 3 s of quiet.
async fn raw(host: &TestHost, request: &[u8]) -> (Duration, String) {
    let started = Instant::now();
    let answer = common::raw_http(&host.http, &String::from_utf8_lossy(request)).await;
    (started.elapsed(), answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_clients_are_refused_while_others_are_served() {
    let host = HostBuilder::new()
        .plugins(&["probe-http"])
        .config(PROBES)
        .config("[front]\nheader_read_timeout_ms = 1000\nidle_timeout_ms = 700\nrequest_timeout_ms = 1500\n")
        .start();
    let addr = host.http.trim_start_matches("http://").to_string();
    let hello = host.url("/probe/hello");
    assert_eq!(client().get(&hello).send().await.unwrap().status(), 200);

    // Slowloris: twenty clients trickling their request heads byte by byte...
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move {
                trickle(
                    &addr,
                    b"",
                    b"GET /probe/hello HTTP/1.1\r\nHost: x\r\nX-Slow: ",
                )
                .await
            })
        })
        .collect();
    // ...and meanwhile one client asking normally is served at once, every time.
    let http = client();
    let serving = Instant::now();
    let mut served = 0;
    while serving.elapsed() < Duration::from_millis(1500) {
        let asked = Instant::now();
        let response = http.get(&hello).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "slow answer: {:?}",
            asked.elapsed()
        );
        served += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served >= 10, "{served}");
    for client in slow {
        let (took, answer) = client.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        assert!(answer.contains("request_timeout"), "{answer}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
            "refused after {took:?}"
        );
    }

    // A body trickled after its head: 408 once the request timeout passes.
    let head = b"POST /probe/echo HTTP/1.1\r\nHost: x\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\nslow";
    let (took, answer) = trickle(&addr, head, b"").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(3000),
        "{took:?}"
    );

    // Oversized heads: one huge header, or too many of them: 431 at once.
    let huge = format!(
        "GET /probe/hello HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let many = format!(
        "GET /probe/hello HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..150)
            .map(|i| format!("x-h{i}: 1\r\n"))
            .collect::<String>()
    );
    for request in [huge, many] {
        let (took, answer) = raw(&host, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
        assert!(took < Duration::from_millis(900), "{took:?}");
    }

    // A request without a Host is the client's fault (400), never counted on the plugin.
    let (_, answer) = raw(&host, b"GET /probe/hello HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert!(answer.contains("bad_request"), "{answer}");
    assert_eq!(host.plugin_stats("probe-http").await["errors"], 0);

    // An idle keep-alive connection is closed after the idle timeout, silently; so is one
    // that never sends anything.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /probe/hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("hello from probe-http") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    let idle = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("the idle connection was closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "nothing more is sent");
    let took = idle.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(2000),
        "{took:?}"
    );
    let (took, answer) = raw(&host, b"").await;
    assert!(answer.is_empty(), "{answer:?}");
    assert!(took < Duration::from_millis(2000), "{took:?}");

    let front = admin_front(&host).await["front"].clone();
    assert!(front["header_timeouts"].as_u64().unwrap() >= 20, "{front}");
    assert!(front["headers_too_large"].as_u64().unwrap() >= 2, "{front}");
    assert!(front["body_timeouts"].as_u64().unwrap() >= 1, "{front}");
    assert!(front["idle_closed"].as_u64().unwrap() >= 2, "{front}");
    host.wait_for_log(&["408: request head not received"]);
    host.wait_for_log(&["431: request head over"]);
}

#[tokio::test]
async fn connections_over_the_cap_are_answered_503() {
    let host = HostBuilder::new()
        .plugins(&["probe-http"])
        .config(PROBES)
        .config("[front]\nmax_connections = 3\nidle_timeout_ms = 10000\n")
        .start();
    let addr = host.http.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    // Give the host the time to accept the three.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, answer) = raw(&host, b"GET /probe/hello HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(answer.contains("\"unavailable\""), "{answer}");

    // One closes: its place is free again.
    held.pop();
    let started = Instant::now();
    loop {
        let (_, answer) = raw(
            &host,
            b"GET /probe/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "{answer:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let front = admin_front(&host).await["front"].clone();
    assert!(
        front["connections_refused"].as_u64().unwrap() >= 1,
        "{front}"
    );
    host.wait_for_log(&["503: connection over max_connections"]);
}
