//! Outbound HTTP from a plugin: denied unless granted, allowed to a granted local server,
//! and cut off by its own breaker when that server dies.

mod common;

use common::{HostBuilder, TestHost, client};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tiny upstream on loopback answering `pong <traceparent it got>`; aborted, it stops.
async fn upstream() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
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
    (port, task)
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

#[tokio::test]
async fn outbound_http_follows_its_grants_and_its_breaker() {
    let (port, server) = upstream().await;
    let (other_port, _other) = upstream().await;
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
    let (status, body) = fetch(&host, &format!("http://127.0.0.1:{other_port}/ping")).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HttpRequestDenied"),
        "{body}"
    );
    host.wait_for_log(&["outbound HTTP denied", "probe-http"]);

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
