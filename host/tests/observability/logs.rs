//! Logs: JSON lines on stdout and in the log folder, free of passwords and tokens at log
//! level trace (and so are the spans and `/metrics`).

use std::time::{Duration, Instant};

use crate::common::{HostBuilder, argon2id, login, sqlite_url};
use crate::otlp::{Receiver, has_span, is_login, login_traced, new_traceparent};

/// 32 random letters and digits.
fn random_secret() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

#[tokio::test]
async fn at_log_level_trace_no_password_or_token_leaks_and_every_line_is_json() {
    let receiver = Receiver::start().await;
    let host = receiver
        .host(
            HostBuilder::seed(),
            1.0,
            "log_dir = \"logs\"\nlog_rotation = \"never\"",
        )
        .env("RUST_LOG", "trace")
        .start();
    let password = random_secret();
    let db = micro_api::sql::connect(&sqlite_url(&host), 1)
        .await
        .unwrap();
    db.execute(
        "INSERT INTO `user` (`user_id`, `user_name`, `pwd`) VALUES (?, ?, ?)",
        &[
            micro_api::sql::Value::Integer(20001),
            micro_api::sql::Value::Text("observer".into()),
            micro_api::sql::Value::Text(argon2id(&password)),
        ],
    )
    .await
    .unwrap();
    let (traceparent, trace_id, _) = new_traceparent();
    let (status, body) = login_traced(
        &host,
        &format!("userName=observer&pwd={password}"),
        &traceparent,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    // A wrong password is a secret too.
    let wrong = random_secret();
    let (status, _) = login(&host, &format!("userName=observer&pwd={wrong}")).await;
    assert_eq!(status, 401);
    let secrets = [password.as_str(), token.as_str(), wrong.as_str()];
    let leaks = |what: &str, text: &str| {
        for secret in secrets {
            assert!(!text.contains(secret), "a secret in {what}: {text}");
        }
    };

    let spans = receiver
        .wait_for(|s| s.iter().any(is_login) && has_span(s, "crypto.sign_token"))
        .await;
    for span in &spans {
        leaks("a span", &format!("{span:?}"));
    }
    let metrics = host
        .admin_request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    leaks("/metrics", &metrics);

    let trace_lines = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains(&format!("\"trace_id\":\"{trace_id}\"")))
            .count()
    };
    host.wait_for_log(&[&trace_id]);
    let stdout = host.logs();
    for line in &stdout {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        for key in ["timestamp", "level", "target"] {
            assert!(parsed.get(key).is_some(), "no {key}: {line}");
        }
        leaks("a log line", line);
    }
    assert!(
        trace_lines(&stdout) >= 3,
        "the request's lines carry its trace id"
    );
    assert!(
        stdout
            .iter()
            .any(|l| l.contains("\"plugin\":\"user\"") && l.contains(&trace_id)),
        "a line of the user plugin, with the trace id"
    );

    // The same lines land in the log folder.
    let started = Instant::now();
    let files = loop {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(host.dir.path().join("logs")).unwrap() {
            files.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
        let lines: Vec<String> = files
            .iter()
            .flat_map(|f| f.lines().map(String::from))
            .collect();
        if trace_lines(&lines) >= 3 || started.elapsed() > Duration::from_secs(5) {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        trace_lines(&files) >= 3,
        "the log files hold the request's lines"
    );
    for line in &files {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
        leaks("a log file", line);
    }
}

/// A guest writing `start a print 1234` in five pieces, each through a fresh stdout handle,
/// then an empty line and a last line without its newline: three records, as printed.
#[tokio::test]
async fn output_written_in_pieces_is_one_record_per_line() {
    let host = HostBuilder::new()
        .plugins(&["probe-http"])
        .config("[[route]]\npath = \"/probe/{*rest}\"\nplugin = \"probe-http\"\n[plugin.probe-http]\nrpc = [\"probe\"]\n")
        .start();
    let response = crate::common::client()
        .get(host.url("/probe/print"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let printed = |host: &crate::common::TestHost| -> Vec<String> {
        host.logs()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|record| record["stream"] == "stdout")
            .map(|record| record["message"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let started = Instant::now();
    while printed(&host).len() < 3 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let records = printed(&host);
    println!("stdout records: {records:?}");
    assert_eq!(
        records,
        ["start a print 1234", "", "no newline at the end"],
        "one record per line, the empty one kept, the last flushed when the instance ended"
    );
}

/// The access log's lines of `host`, as JSON.
fn access_lines(host: &crate::common::TestHost) -> Vec<serde_json::Value> {
    host.logs()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|record| record["target"] == "micro_api::access")
        .collect()
}

/// `access_log = "json"`: one line per request, written after its response, with what an
/// operator reads (never the query, a body or a header value), whatever `log_level` says.
#[tokio::test]
async fn the_access_log_writes_one_line_per_request() {
    let host = HostBuilder::seed()
        .config("[telemetry]\nlog_level = \"warn\"\naccess_log = \"json\"\n")
        .start();
    let (traceparent, trace_id, _) = new_traceparent();
    let form = "userName=micro&pwd=123";
    let response = crate::common::client()
        .post(host.url("/user/login?api_key=query-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("traceparent", &traceparent)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sent = response.bytes().await.unwrap().len();
    let missing = crate::common::client()
        .get(host.url("/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let started = Instant::now();
    while access_lines(&host).len() < 2 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lines = access_lines(&host);
    println!("access lines: {lines:#?}");
    assert_eq!(lines.len(), 2, "one line per request");
    let login = &lines[0];
    assert_eq!(login["method"], "POST");
    assert_eq!(login["route"], "/user/login");
    assert_eq!(login["path"], "/user/login");
    assert_eq!(login["status"], 200);
    assert_eq!(login["bytes_in"], form.len());
    assert_eq!(login["bytes_out"], sent);
    assert_eq!(login["plugin"], "user-api");
    assert!(
        login["version"].as_str().is_some_and(|v| v.len() == 16),
        "{login}"
    );
    assert_eq!(login["trace_id"], trace_id);
    assert_eq!(login["client"], "127.0.0.1");
    assert_eq!(login["complete"], true);
    assert!(
        login["duration_us"].as_u64().is_some_and(|us| us > 0),
        "{login}"
    );
    let nowhere = &lines[1];
    assert_eq!(
        (&nowhere["status"], &nowhere["path"]),
        (&404.into(), &"/nowhere".into())
    );
    assert!(nowhere["plugin"].is_null(), "{nowhere}");
    let all = host.logs().join("\n");
    assert!(!all.contains("query-secret"), "the query is never logged");
    assert!(!all.contains("pwd=123"), "nor the body");
}

/// Off by default: no access line.
#[tokio::test]
async fn the_access_log_is_off_by_default() {
    let host = HostBuilder::seed().start();
    let (status, _) = login(&host, "userName=micro&pwd=123").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(access_lines(&host).is_empty());
}
