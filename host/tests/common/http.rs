//! Talking HTTP to a test host: the shared client, the seed's login and probe calls, the
//! admin API as JSON, and raw bytes for requests no well-behaved client would send.

use std::time::Duration;

use super::host::TestHost;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

/// What a test reads of a response: status, `Retry-After`, body (JSON, or the text as a
/// JSON string when it is not JSON).
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: serde_json::Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Answer {
        status,
        retry_after,
        body,
    }
}

/// `POST /user/login` with the seed's form encoding.
pub async fn login_answer(host: &TestHost, form: &str) -> Answer {
    let response = client()
        .post(host.url("/user/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .unwrap();
    answer(response).await
}

/// `POST /user/login`: (status, body).
pub async fn login(host: &TestHost, form: &str) -> (u16, serde_json::Value) {
    let Answer { status, body, .. } = login_answer(host, form).await;
    (status, body)
}

/// `POST /probe/call/probe/{method}` with `payload` (probe-http calling the probe service).
pub async fn probe_call(host: &TestHost, method: &str, payload: serde_json::Value) -> Answer {
    let response = client()
        .post(host.url(&format!("/probe/call/probe/{method}")))
        .json(&payload)
        .send()
        .await
        .unwrap();
    answer(response).await
}

/// `GET <path>` on the admin listener, as JSON.
pub async fn admin_json(host: &TestHost, path: &str) -> serde_json::Value {
    host.admin_request(reqwest::Method::GET, path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Writes `request` as it is on a fresh connection and returns everything the server sends
/// until it closes or goes quiet (for requests no well-behaved client would send).
pub async fn raw_http(base: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything: that is the point.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && is_complete(&answer) {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whether a buffered HTTP/1.1 response with a content-length is complete.
fn is_complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .is_some_and(|len| body.len() >= len)
}
