//! Metrics: `GET /metrics` read with a Prometheus text parser, moving with requests, a trap
//! and an opening breaker.

use std::collections::BTreeMap;

use crate::common::{HostBuilder, TestHost, client};

/// `GET /metrics`, parsed: `(name, labels) -> value` of every sample.
async fn scrape(host: &TestHost) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let response = host
        .admin_request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"));
    let mut samples = BTreeMap::new();
    for sample in scrape.samples {
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => continue,
        };
        let labels = sample
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        samples.insert((sample.metric, labels), value);
    }
    samples
}

fn sample(
    samples: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .get(&(name.to_string(), labels))
        .copied()
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_with_requests_a_trap_and_an_opening_breaker() {
    // Literal routes: the parser splits label values at `,` and `=` and stops at braces.
    let routes: String = ["/probe/hello", "/probe/trap", "/probe/call/probe/fail"]
        .iter()
        .map(|path| format!("[[route]]\npath = {path:?}\nplugin = \"probe-http\"\n"))
        .collect();
    let host = HostBuilder::new()
        .plugins(&["probe", "probe-http"])
        .config(&routes)
        .config("[plugin.probe-http]\nrpc = [\"probe\"]\n[plugin.probe]\nrpc = [\"probe\"]\nsql = true\n")
        .config("[breaker.\"probe.fail\"]\nvolume_threshold = 4\nsleep_window_ms = 60000\n")
        .start();
    let route = [("route", "/probe/hello"), ("status", "200")];
    let before = scrape(&host).await;
    for _ in 0..3 {
        let response = client().get(host.url("/probe/hello")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let trapped = client().get(host.url("/probe/trap")).send().await.unwrap();
    assert_eq!(trapped.status(), 500);
    for _ in 0..6 {
        client()
            .post(host.url("/probe/call/probe/fail"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
    }
    let after = scrape(&host).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    assert_eq!(moved("micro_api_http_requests_total", &route), 3.0);
    assert_eq!(
        moved(
            "micro_api_http_requests_total",
            &[("route", "/probe/trap"), ("status", "500")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "micro_api_http_request_duration_seconds",
            &[("route", "/probe/hello")]
        ),
        3.0,
        "the histogram's +Inf bucket"
    );
    assert_eq!(
        moved("micro_api_plugin_traps_total", &[("plugin", "probe-http")]),
        1.0
    );
    assert!(
        moved(
            "micro_api_plugin_invocations_total",
            &[("plugin", "probe-http")]
        ) >= 10.0
    );
    assert_eq!(
        sample(
            &after,
            "micro_api_breaker_state",
            &[("command", "probe.fail")]
        ),
        1.0,
        "open"
    );
    assert_eq!(
        moved(
            "micro_api_breaker_transitions_total",
            &[("command", "probe.fail"), ("to", "open")]
        ),
        1.0
    );
    let rpc = |outcome| {
        moved(
            "micro_api_rpc_calls_total",
            &[
                ("service", "probe"),
                ("method", "fail"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(rpc("unavailable"), 4.0);
    assert_eq!(rpc("circuit_open"), 2.0);
    // An instance is dropped just after its response's last byte is written, so the scrape
    // may race the drop of the last one; it must be gone soon after.
    let mut in_use = sample(&after, "micro_api_instances_in_use", &[]);
    for _ in 0..40 {
        if in_use == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        in_use = sample(&scrape(&host).await, "micro_api_instances_in_use", &[]);
    }
    assert_eq!(in_use, 0.0, "every instance is gone with its request");
    assert_eq!(
        sample(
            &after,
            "micro_api_plugin_reloads_total",
            &[("outcome", "succeeded")]
        ),
        2.0,
        "probe and probe-http loaded: {after:?}"
    );
}

/// A guest that returns without setting its response (and without trapping) is a 500 the
/// operator can see: a log line naming the plugin and version, and its own counter.
#[tokio::test]
async fn a_guest_returning_without_a_response_is_logged_and_counted() {
    let host = HostBuilder::new()
        .plugins(&["no-answer"])
        .config("[[route]]\npath = \"/silent\"\nplugin = \"no-answer\"\n")
        .start();
    for _ in 0..2 {
        let response = client().get(host.url("/silent")).send().await.unwrap();
        assert_eq!(response.status(), 500);
    }
    let line = host.wait_for_log(&["plugin returned without setting a response", "no-answer"]);
    assert!(line.contains("\"version\""), "{line}");
    assert!(line.contains("\"trace_id\""), "{line}");
    let samples = scrape(&host).await;
    let plugin = [("plugin", "no-answer")];
    assert_eq!(
        sample(&samples, "micro_api_plugin_no_responses_total", &plugin),
        2.0
    );
    assert_eq!(
        sample(&samples, "micro_api_plugin_errors_total", &plugin),
        2.0
    );
    assert_eq!(
        sample(&samples, "micro_api_plugin_traps_total", &plugin),
        0.0
    );
    let entry = host.plugin_stats("no-answer").await;
    assert_eq!(entry["no_responses"], 2, "{entry}");
}
