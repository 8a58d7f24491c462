//! Stopping a node loses nothing (issue 22, part 2): eight clients keep calling through
//! SIGTERM, and every request is either refused at connect (the node had stopped
//! accepting) or answered 200: no 503 from the node's own shutdown (its in-process rpc
//! still resolves after it left the registry), no request reset after it was written.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{HostBuilder, PROBES, TestHost};

/// What the clients saw.
#[derive(Debug, Default)]
struct Tally {
    answered: usize,
    refused_at_connect: usize,
    failed: Vec<String>,
}

/// Eight clients call `probe.echo` through probe-http (an rpc hop) in a loop; SIGTERM comes
/// 300 ms in; the loop ends when the host has exited.
async fn calls_through_sigterm(mut host: TestHost, keep_alive: bool) -> Tally {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(if keep_alive { 64 } else { 0 })
        .build()
        .unwrap();
    let exited = Arc::new(AtomicBool::new(false));
    let url = host.url("/probe/call/probe/echo");
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (http, url, exited) = (http.clone(), url.clone(), exited.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                while !exited.load(Ordering::SeqCst) {
                    match http.post(&url).body("{}").send().await {
                        Ok(response) if response.status() == 200 => tally.answered += 1,
                        Ok(response) => {
                            let status = response.status();
                            let body = response.text().await.unwrap_or_default();
                            tally.failed.push(format!("{status} {body}"));
                        }
                        Err(e) if e.is_connect() => {
                            tally.refused_at_connect += 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(e) => tally.failed.push(format!("{e:?}")),
                    }
                }
                tally
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    host.signal("TERM");
    // Within the grace period the node says it is not ready, and still serves.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = reqwest::get(format!("{}/admin/health/ready", host.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "a stopping node is not ready");
    let status = tokio::task::spawn_blocking(move || host.wait_exit(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the host exits");
    assert!(status.success(), "exit {status}");
    exited.store(true, Ordering::SeqCst);
    let mut all = Tally::default();
    for client in clients {
        let tally = client.await.unwrap();
        all.answered += tally.answered;
        all.refused_at_connect += tally.refused_at_connect;
        all.failed.extend(tally.failed);
    }
    all
}

fn probes_stopping_in(grace_ms: u64) -> TestHost {
    HostBuilder::new()
        .plugins(&["probe", "probe-http"])
        .config(PROBES)
        .config(&format!("[server]\nshutdown_grace_ms = {grace_ms}\n"))
        .start()
}

#[tokio::test]
async fn sigterm_loses_no_request_of_clients_connecting_for_each() {
    let tally = calls_through_sigterm(probes_stopping_in(1000), false).await;
    println!("a new connection per request: {tally:?}");
    assert!(tally.answered > 50, "served until the end: {tally:?}");
    assert!(tally.failed.is_empty(), "lost: {:?}", tally.failed);
}

#[tokio::test]
async fn sigterm_loses_no_request_of_keep_alive_clients() {
    let tally = calls_through_sigterm(probes_stopping_in(1000), true).await;
    println!("keep-alive connections: {tally:?}");
    assert!(tally.answered > 50, "served until the end: {tally:?}");
    assert!(tally.failed.is_empty(), "lost: {:?}", tally.failed);
}
