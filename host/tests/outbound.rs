//! Outbound HTTP from a plugin: denied unless granted, allowed to a granted local server,
//! cut off by its own breaker when that server dies, and connected to the addresses its
//! name was checked against, whatever the name's DNS answers next (rebinding).

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{HostBuilder, TestHost, client};
use hickory_proto::op::Message;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tiny upstream on loopback answering `pong <traceparent it got>`, and the count of
/// connections it accepted; aborted, it stops.
async fn upstream() -> (u16, tokio::task::JoinHandle<()>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                // Echo the trace context the host added, to check it was sent.
                let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                let traceparent = text
                    .lines()
                    .find_map(|l| l.strip_prefix("traceparent: "))
                    .unwrap_or("none")
                    .trim()
                    .to_string();
                let body = format!("pong {traceparent}");
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (port, task, accepted)
}

/// A public address (not one `is_local` refuses) that the rebinding name answers first;
/// nothing here answers on it.
const PUBLIC: Ipv4Addr = Ipv4Addr::new(93, 184, 215, 14);

/// A DNS server on a free UDP port of loopback: `rebind.test` answers [`PUBLIC`] to its
/// first A query and 127.0.0.1 to every later one, `loopback.test` and `tls.test`
/// 127.0.0.1 always, all
/// with TTL 0 so no answer is cached. Returns its address and the count of A queries for
/// `rebind.test`.
async fn rebinding_dns() -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = asked.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
            answer.metadata.recursion_desired = query.metadata.recursion_desired;
            answer.metadata.recursion_available = true;
            for question in &query.queries {
                answer.add_query(question.clone());
                let name = question.name().to_ascii().to_ascii_lowercase();
                let ip = match (question.query_type(), name.trim_end_matches('.')) {
                    (RecordType::A, "rebind.test")
                        if counted.fetch_add(1, Ordering::SeqCst) == 0 =>
                    {
                        PUBLIC
                    }
                    (RecordType::A, "rebind.test" | "loopback.test" | "tls.test") => {
                        Ipv4Addr::LOCALHOST
                    }
                    _ => continue,
                };
                answer.add_answer(Record::from_rdata(
                    question.name().clone(),
                    0,
                    RData::A(A(ip)),
                ));
            }
            let _ = socket.send_to(&answer.to_vec().unwrap(), from).await;
        }
    });
    (address, asked)
}

async fn fetch(host: &TestHost, url: &str) -> (u16, Value) {
    let response = client()
        .post(host.url("/probe/fetch"))
        .body(url.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Fetching `url` is denied (502 `HttpRequestDenied`), and logged with `logged`.
async fn denied(host: &TestHost, url: &str, logged: &str) {
    let (status, body) = fetch(host, url).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("HttpRequestDenied"), "{body}");
    host.wait_for_log(&["outbound HTTP denied", logged]);
}

#[tokio::test]
async fn outbound_http_follows_its_grants_and_its_breaker() {
    let (port, server, _) = upstream().await;
    let (other_port, _other, _) = upstream().await;
    let host = HostBuilder::new()
        .plugins(&["probe-http"])
        .config(&format!(
            r#"
[[route]]
path = "/probe/{{*rest}}"
plugin = "probe-http"

[plugin.probe-http]
rpc = ["probe"]
http = ["http://127.0.0.1:{port}"]

[breaker."http:http://127.0.0.1:{port}"]
volume_threshold = 3
sleep_window_ms = 60000
"#
        ))
        .start();

    let granted = format!("http://127.0.0.1:{port}/ping");
    let (status, body) = fetch(&host, &granted).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &Value::from(200)),
        "{body}"
    );
    let answer = body["body"].as_str().unwrap();
    assert!(
        answer.starts_with("pong 00-"),
        "the call carried a traceparent: {answer}"
    );

    // Another port on the same host is not granted.
    denied(
        &host,
        &format!("http://127.0.0.1:{other_port}/ping"),
        "probe-http",
    )
    .await;

    // The upstream dies: its breaker opens after the volume threshold.
    server.abort();
    let _ = server.await;
    for _ in 0..3 {
        let (status, body) = fetch(&host, &granted).await;
        assert_eq!(status, 502, "{body}");
    }
    let (status, body) = fetch(&host, &granted).await;
    assert_eq!(status, 502);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DestinationUnavailable"),
        "an open breaker answers at once: {body}"
    );
    assert_eq!(
        host.breaker(&format!("http:http://127.0.0.1:{port}")).await["state"],
        "open"
    );
}

/// probe-http with `grant` (its `http` grant and more), resolving through `dns` only.
fn resolving_with(dns: &std::net::SocketAddr, grant: &str) -> TestHost {
    HostBuilder::new()
        .plugins(&["probe-http"])
        .config(&format!(
            "[outbound]\nnameservers = [\"{dns}\"]\n\n[[route]]\npath = \"/probe/{{*rest}}\"\nplugin = \"probe-http\"\n\n[plugin.probe-http]\nrpc = [\"probe\"]\n{grant}\n"
        ))
        .start()
}

#[tokio::test]
async fn outbound_http_connects_to_the_addresses_it_checked() {
    let (port, _server, accepted) = upstream().await;
    let (dns, asked) = rebinding_dns().await;
    let deadline = Duration::from_millis(1500);
    // A wildcard: a non-public address is reached only through a grant naming its host.
    let grant = format!(
        "http = [\"http://*.test:{port}\"]\nlimits = {{ deadline_ms = {} }}",
        deadline.as_millis()
    );
    let host = resolving_with(&dns, &grant);

    // DNS rebinding: the check sees the public address, a second lookup would see loopback.
    let started = Instant::now();
    let response = client()
        .post(host.url("/probe/fetch"))
        .body(format!("http://rebind.test:{port}/"))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert!(
        asked.load(Ordering::SeqCst) >= 1,
        "the host resolved rebind.test with [outbound] nameservers"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the connection went to the checked public address, never to loopback ({status} {body})"
    );
    assert_ne!(status, 200, "{body}");
    assert!(
        elapsed < deadline + Duration::from_secs(1),
        "the guest got its error within its deadline: {elapsed:?}"
    );

    // A name answering loopback to the check is refused, as before: only a literal grant
    // reaches a non-public address.
    denied(
        &host,
        &format!("http://loopback.test:{port}/"),
        "loopback.test",
    )
    .await;
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn outbound_https_speaks_tls_to_the_checked_address_with_the_uri_host_as_sni() {
    // A listener that keeps the first bytes it is sent: the TLS client's hello.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hello = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        buf.truncate(n);
        buf
    });
    let (dns, _) = rebinding_dns().await;
    let host = resolving_with(&dns, &format!("http = [\"https://tls.test:{port}\"]"));

    let (status, body) = fetch(&host, &format!("https://tls.test:{port}/")).await;
    assert_eq!(status, 502, "no TLS server answered: {body}");
    let hello = tokio::time::timeout(Duration::from_secs(5), hello)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        hello.first(),
        Some(&0x16),
        "a TLS handshake record: {hello:?}"
    );
    assert!(
        hello.windows(b"tls.test".len()).any(|w| w == b"tls.test"),
        "the hello names tls.test (SNI)"
    );
}
