//! Request bodies stream into the guest (issue 22, part 1): an echo answers while the upload
//! is still arriving, and the body's limits hold while it streams (413, or the answer cut
//! once a chunked body passes `body_limit`; 408 for a body that stops arriving). Raw HTTP/1.1
//! over TCP, so the test decides when each byte is sent.

mod common;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{HostBuilder, PROBES, TestHost};

/// stream-echo on `/echo`, probe-http (whose SDK reads the body whole) on `/probe/...`.
fn echo_host(extra: &str) -> TestHost {
    HostBuilder::new()
        .plugins(&["stream-echo", "probe-http"])
        .config(PROBES)
        .config("[[route]]\npath = \"/echo\"\nplugin = \"stream-echo\"\n")
        .config(extra)
        .start()
}

async fn connect(host: &TestHost) -> TcpStream {
    TcpStream::connect(host.http.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// One chunk of a chunked body.
fn chunk(data: &[u8]) -> Vec<u8> {
    let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
    framed.extend_from_slice(data);
    framed.extend_from_slice(b"\r\n");
    framed
}

/// Reads until `needle` has arrived, the server closes, or `limit` passes: what came.
async fn read_until(stream: &mut TcpStream, needle: &[u8], limit: Duration) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    while !seen.windows(needle.len()).any(|w| w == needle) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    seen
}

const CHUNKED_HEAD: &[u8] =
    b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_answers_before_the_body_has_ended() {
    let host = echo_host("");
    let mut stream = connect(&host).await;
    stream.write_all(CHUNKED_HEAD).await.unwrap();
    stream.write_all(&chunk(b"first-piece")).await.unwrap();
    let sent = Instant::now();
    // The rest is not sent yet: a host that reads the whole body first answers nothing.
    let early = read_until(&mut stream, b"first-piece", Duration::from_secs(5)).await;
    eprintln!("first piece echoed {:?} after it was sent", sent.elapsed());
    let early = String::from_utf8_lossy(&early);
    assert!(
        early.starts_with("HTTP/1.1 200") && early.contains("first-piece"),
        "the first piece was not echoed before the body ended: {early:?}"
    );
    stream.write_all(&chunk(b"second-piece")).await.unwrap();
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let rest = read_until(&mut stream, b"0\r\n\r\n", Duration::from_secs(5)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.contains("second-piece") && rest.ends_with("0\r\n\r\n"),
        "the echo did not end with the body: {rest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_past_the_limit_is_refused_or_cut_while_it_streams() {
    let host = echo_host("[server]\nbody_limit = 4096\n");
    let piece = [b'x'; 1024];

    // A plugin that reads the body before answering gets no body: the client gets 413.
    let mut stream = connect(&host).await;
    stream
        .write_all(
            b"POST /probe/echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    for _ in 0..5 {
        let _ = stream.write_all(&chunk(&piece)).await;
    }
    let answer = read_until(&mut stream, b"payload_too_large", Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413") && answer.contains("payload_too_large"),
        "a chunked body over body_limit was not refused 413: {answer:?}"
    );

    // The echo answers 200 at once: past the limit its answer is cut, never finished.
    let mut stream = connect(&host).await;
    stream.write_all(CHUNKED_HEAD).await.unwrap();
    stream.write_all(&chunk(&piece)).await.unwrap();
    let head = read_until(&mut stream, &piece, Duration::from_secs(5)).await;
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    for _ in 0..5 {
        let _ = stream.write_all(&chunk(&piece)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let rest = read_until(&mut stream, b"0\r\n\r\n", Duration::from_secs(5)).await;
    assert!(
        !rest.ends_with(b"0\r\n\r\n"),
        "an echo of a body past body_limit ended as if whole"
    );
    let echoed = head.iter().chain(&rest).filter(|&&b| b == b'x').count();
    assert!(
        echoed <= 4096,
        "{echoed} bytes echoed past a 4096-byte limit"
    );
    // The refusals were the client's: the plugin is not judged for them.
    let stats = host.plugin_stats("stream-echo").await;
    assert_eq!(stats["traps"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_answered_408_at_the_deadline() {
    let host = echo_host("[front]\nrequest_timeout_ms = 1000\n");
    let mut stream = connect(&host).await;
    let started = Instant::now();
    stream
        .write_all(b"POST /probe/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nten bytes.")
        .await
        .unwrap();
    let answer = read_until(&mut stream, b"request_timeout", Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408") && answer.contains("request_timeout"),
        "a stalled body was not answered 408: {answer:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "408 after {elapsed:?}, not at the 1 s deadline"
    );
    let stats = host.plugin_stats("probe-http").await;
    assert_eq!(stats["traps"], 0, "{stats}");
}
