//! Fuzz target: random malformed HTTP thrown at the public, admin and rpc listeners of a
//! running host.

use std::time::Duration;

use crate::common;

/// Random malformed HTTP against a running host: the public, admin and rpc listeners get
/// bad methods and versions, invalid UTF-8, huge and broken headers, wrong lengths, broken
/// chunks and cut bodies. The host must never crash and must keep serving good requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_never_takes_the_host_down() {
    use rand::{Rng, SeedableRng};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cases: u64 = std::env::var("MICRO_API_FUZZ_HTTP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let seed: u64 = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6d69_6372_6f2d_6170);
    let mut host = common::HostBuilder::seed()
        .plugins(&["probe-http"])
        .admin_token("fuzz-admin-token-0123456789")
        .config(common::PROBES)
        .config(
            r#"
[[route]]
path = "/user/profile"
methods = ["GET"]
plugin = "user-api"
auth = "required"

[server]
rpc = "127.0.0.1:0"

[cluster]
secret = "fuzz-cluster-secret-0123456789"

[front]
header_read_timeout_ms = 1000
request_timeout_ms = 1000
idle_timeout_ms = 500

[login_limit]
max_failures_per_address = 1000000
"#,
        )
        .start();
    let targets: Vec<String> = [&host.http, &host.admin, &host.rpc]
        .iter()
        .map(|url| url.trim_start_matches("http://").to_string())
        .filter(|addr| !addr.is_empty())
        .collect();
    assert_eq!(targets.len(), 3, "the rpc listener is up");

    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let requests: Vec<(usize, Vec<u8>, bool)> = (0..cases)
        .map(|_| {
            let target = if rng.random_bool(0.7) {
                0
            } else {
                rng.random_range(1..3)
            };
            (target, malformed_request(&mut rng), rng.random_bool(0.8))
        })
        .collect();
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let mut batch = tokio::task::JoinSet::new();
    for (i, (target, request, half_close)) in requests.into_iter().enumerate() {
        let addr = targets[target].clone();
        let statuses = statuses.clone();
        batch.spawn(async move {
            let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await else {
                return;
            };
            let _ = stream.write_all(&request).await;
            if half_close {
                let _ = stream.shutdown().await;
            }
            let mut answer = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
            let text = String::from_utf8_lossy(&answer);
            let mut status = text.get(..12).unwrap_or(&text).to_string();
            // A server error says which: a plugin's trap on hostile input is a crash too.
            if status.starts_with("HTTP/1.1 5") {
                let code = text
                    .split("\"code\":\"")
                    .nth(1)
                    .and_then(|c| c.split('"').next());
                status = format!("{status} {}", code.unwrap_or("?"));
            }
            *statuses.lock().unwrap().entry(status).or_insert(0u64) += 1;
        });
        // At most 32 connections at once; between batches, the host must still serve.
        if batch.len() >= 32 || i as u64 + 1 == cases {
            while batch.join_next().await.is_some() {}
            assert!(
                host.is_running(),
                "the host died on the batch ending at case {i}"
            );
        }
        if i % 200 == 199 {
            let hello = common::client()
                .get(host.url("/probe/hello"))
                .send()
                .await
                .unwrap();
            assert_eq!(hello.status(), 200, "after case {i}");
        }
    }
    assert!(host.is_running());
    let statuses = statuses.lock().unwrap().clone();
    assert!(
        statuses.keys().all(|s| !s.contains("plugin_trap")),
        "a plugin trapped: {statuses:?}"
    );
    let (status, body) = common::login(&host, "userName=micro&pwd=123").await;
    assert_eq!(status, 200, "a good login after the fuzzing: {body}");
    eprintln!("fuzz target malformed http: {cases} inputs, 0 crashes; answers: {statuses:?}");
}

/// One malformed (or, now and then, well-formed) HTTP/1.x request.
fn malformed_request(rng: &mut impl rand::Rng) -> Vec<u8> {
    fn pick<T: Copy>(rng: &mut impl rand::Rng, items: &[T]) -> T {
        items[rng.random_range(0..items.len())]
    }
    fn junk(rng: &mut impl rand::Rng, max: usize) -> Vec<u8> {
        let len = rng.random_range(0..=max);
        (0..len).map(|_| rng.random()).collect()
    }
    let mut out = Vec::new();
    let eol: &[u8] = pick(
        rng,
        &[&b"\r\n"[..], b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n"],
    );
    // Request line.
    match rng.random_range(0..10) {
        0 => out.extend(junk(rng, 16)),
        1 => out.extend("GET".repeat(rng.random_range(1..3000)).as_bytes()),
        _ => out.extend_from_slice(pick(
            rng,
            &[
                &b"GET"[..],
                b"POST",
                b"PUT",
                b"DELETE",
                b"PATCH",
                b"HEAD",
                b"OPTIONS",
                b"TRACE",
                b"CONNECT",
                b"PRI",
                b"get",
                b"G\x00T",
                b"\xff\xfe",
                b"BREW",
            ],
        )),
    }
    out.push(b' ');
    match rng.random_range(0..12) {
        0 => out.extend(junk(rng, 64)),
        1 => out.extend(format!("/{}", "a/".repeat(rng.random_range(1..20_000))).as_bytes()),
        2 => out.extend_from_slice(b"*"),
        3 => out.extend_from_slice(b"http://x/user/login?userName=micro"),
        4 => {
            out.extend_from_slice(b"/probe/\xc3\x28\xff%ff%00");
        }
        _ => out.extend_from_slice(pick(
            rng,
            &[
                &b"/user/login"[..],
                b"/user/profile",
                b"/probe/echo",
                b"/probe/echo-headers",
                b"/probe/hello",
                b"/probe/call/probe/echo",
                b"/admin/plugins",
                b"/admin/plugins/reload",
                b"/admin/health/live",
                b"/rpc/user/GetUserByName",
                b"/rpc/auth/VerifyAccessToken",
                b"/rpc/user",
                b"/../etc/passwd",
                b"/user/login/",
                b"//user//login",
                b"/user/%6cogin",
                b"",
            ],
        )),
    }
    if !rng.random_bool(0.05) {
        out.push(b' ');
        out.extend_from_slice(pick(
            rng,
            &[
                &b"HTTP/1.1"[..],
                b"HTTP/1.1",
                b"HTTP/1.0",
                b"HTTP/2.0",
                b"HTTP/9.9",
                b"http/1.1",
                b"HTTP/1.1 extra",
                b"",
            ],
        ));
    }
    out.extend_from_slice(eol);
    // Headers.
    let body = match rng.random_range(0..5) {
        0 => b"userName=micro&pwd=123".to_vec(),
        1 => format!(
            "userName={}&pwd={}",
            rng.random::<u16>(),
            rng.random::<u32>()
        )
        .into_bytes(),
        2 => br#"{"name":"micro","pwd":"123","token":"x"}"#.to_vec(),
        3 => junk(rng, 300),
        _ => Vec::new(),
    };
    let chunked = rng.random_bool(0.2);
    for _ in 0..rng.random_range(0..8) {
        let header: Vec<u8> = match rng.random_range(0..22) {
            0 => format!("x-big: {}", "a".repeat(rng.random_range(1_000..70_000))).into_bytes(),
            1 => [b"x-junk: ".to_vec(), junk(rng, 40)].concat(),
            2 => [junk(rng, 12), b": v".to_vec()].concat(),
            3 => b"no colon here".to_vec(),
            4 => b" folded: continuation".to_vec(),
            5 => b"content-length: -1".to_vec(),
            6 => b"content-length: 99999999999999999999".to_vec(),
            7 => b"content-length: abc".to_vec(),
            8 => b"content-length: 5, 6".to_vec(),
            9 => format!("content-length: {}", body.len() + rng.random_range(1..100)).into_bytes(),
            10 => format!(
                "content-length: {}",
                body.len().saturating_sub(rng.random_range(1..10))
            )
            .into_bytes(),
            11 => b"transfer-encoding: chunked".to_vec(),
            12 => b"transfer-encoding: gzip, chunked, identity".to_vec(),
            13 => b"content-type: application/x-www-form-urlencoded".to_vec(),
            14 => b"content-type: application/json".to_vec(),
            15 => b"authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.".to_vec(),
            16 => b"authorization: Bearer fuzz-admin-token-0123456789".to_vec(),
            17 => b"authorization: Bearer fuzz-cluster-secret-0123456789".to_vec(),
            18 => [b"x-micro-api-claims: ".to_vec(), junk(rng, 30)].concat(),
            19 => b"expect: 100-continue".to_vec(),
            20 => b"upgrade: h2c".to_vec(),
            _ => b"host: a b".to_vec(),
        };
        out.extend(header);
        out.extend_from_slice(eol);
    }
    // Mostly with a Host, so most requests get past the front to a plugin.
    if rng.random_bool(0.85) {
        out.extend_from_slice(b"host: x");
        out.extend_from_slice(eol);
    }
    if !chunked && rng.random_bool(0.6) {
        out.extend(format!("content-length: {}", body.len()).as_bytes());
        out.extend_from_slice(eol);
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !rng.random_bool(0.05) {
        out.extend_from_slice(eol);
    }
    // Body: whole, cut, chunked (well or badly).
    if chunked {
        match rng.random_range(0..4) {
            0 => out.extend(format!("{:x}\r\n", body.len()).as_bytes()),
            1 => out.extend_from_slice(b"zz\r\n"),
            2 => out.extend_from_slice(b"fffffffffffffffffff\r\n"),
            _ => out.extend(format!("{:x};ext=1\r\n", body.len() + 7).as_bytes()),
        }
        out.extend(&body);
        if rng.random_bool(0.5) {
            out.extend_from_slice(b"\r\n0\r\n\r\n");
        }
    } else {
        let keep = if rng.random_bool(0.3) {
            rng.random_range(0..=body.len())
        } else {
            body.len()
        };
        out.extend(&body[..keep]);
    }
    // Now and then a second request pipelined behind the first.
    if rng.random_bool(0.1) {
        out.extend_from_slice(b"GET /probe/hello HTTP/1.1\r\nhost: x\r\n\r\n");
    }
    out
}
