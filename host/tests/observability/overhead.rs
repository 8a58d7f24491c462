//! The tracing overhead, measured on purpose: exporting off, sampling 1%, sampling all.

use std::time::Instant;

use crate::SEED_LOGIN;
use crate::common::{HostBuilder, TestHost, client, login, median};
use crate::otlp::Receiver;

/// The overhead the observability issue asks for; run with
/// `cargo xtask test --test observability -- --ignored --nocapture tracing_overhead_figures`.
#[tokio::test]
#[ignore = "a measurement, not a check: run it on purpose"]
async fn tracing_overhead_figures() {
    // The cheap route: probe-http answering a constant (the `hello` component is built by
    // the bench task only).
    const HELLO: &str = "[[route]]\npath = \"/probe/hello\"\nplugin = \"probe-http\"\n";
    let receiver = Receiver::start().await;
    let modes = [
        ("off", None),
        ("sampling 0.01", Some(0.01)),
        ("sampling 1.0", Some(1.0)),
    ];
    let hosts: Vec<TestHost> = modes
        .iter()
        .map(|(_, ratio)| {
            let builder = HostBuilder::seed().plugins(&["probe-http"]).config(HELLO);
            match ratio {
                Some(ratio) => receiver.host(builder, *ratio, "").start(),
                None => builder.start(),
            }
        })
        .collect();
    // The three hosts take turns, request by request, so a busy machine slows them alike.
    let http = client();
    let mut hello = vec![Vec::new(); hosts.len()];
    for i in 0..1100 {
        for (host, times) in hosts.iter().zip(&mut hello) {
            let started = Instant::now();
            let response = http.get(host.url("/probe/hello")).send().await.unwrap();
            response.bytes().await.unwrap();
            if i >= 100 {
                times.push(started.elapsed());
            }
        }
    }
    let mut logins = vec![Vec::new(); hosts.len()];
    for i in 0..55 {
        for (host, times) in hosts.iter().zip(&mut logins) {
            let started = Instant::now();
            let (status, _) = login(host, SEED_LOGIN).await;
            assert_eq!(status, 200);
            if i >= 5 {
                times.push(started.elapsed());
            }
        }
    }
    let rows: Vec<_> = modes
        .iter()
        .zip(hello.into_iter().zip(logins))
        .map(|((mode, _), (hello, logins))| (*mode, median(hello), median(logins)))
        .collect();
    let (_, hello_off, login_off) = rows[0];
    eprintln!(
        "tracing overhead, medians (1000 GET /probe/hello, 50 logins per host, sequential, hosts in turn):"
    );
    for (mode, hello, login) in rows {
        eprintln!(
            "  {mode:<14} hello {hello:>10.1?} ({:.2}x)   login {login:>10.1?} ({:.2}x)",
            hello.as_secs_f64() / hello_off.as_secs_f64(),
            login.as_secs_f64() / login_off.as_secs_f64(),
        );
    }
}
