//! Attacks on the admin listener (issue 16, item 11), over real connections: a listener
//! published without a token, DNS rebinding (a page of another domain reading the admin
//! API through the victim's browser), and cross-site state-changing posts.

mod common;

use common::{HostBuilder, client};

async fn admin_status(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[test]
fn an_admin_listener_off_loopback_without_a_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "data_dir = \"data\"\n").unwrap();
    let log = dir.path().join("log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_micro-api"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0"])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
        .spawn()
        .unwrap();
    // Refused at start means it exits at once; one that serves is stopped and fails.
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap()
        + &std::fs::read_to_string(dir.path().join("err")).unwrap();
    assert!(
        status.is_some_and(|s| !s.success()),
        "it must not start: {text}"
    );
    assert!(
        text.contains("MICRO_API__ADMIN__TOKEN"),
        "the fix is named: {text}"
    );
}

#[tokio::test]
async fn a_dns_rebound_page_cannot_read_the_admin_api() {
    let host = HostBuilder::seed().start();
    let url = format!("{}/admin/config", host.admin);
    let (status, body) =
        admin_status(client().get(&url).header("host", "rebind.attacker.example")).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("values"), "nothing of the config: {body}");
    // By address or localhost, as an operator's curl asks, it answers.
    let port = host.admin.rsplit(':').next().unwrap();
    for name in ["127.0.0.1".to_string(), format!("localhost:{port}")] {
        let (status, body) = admin_status(client().get(&url).header("host", &name)).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
}

#[tokio::test]
async fn a_named_host_is_answered_once_allowed() {
    let host = HostBuilder::seed()
        .config("[admin]\nallowed_hosts = [\"gateway.internal\"]\n")
        .start();
    let url = format!("{}/admin/health/ready", host.admin);
    let (status, _) =
        admin_status(client().get(&url).header("host", "gateway.internal:9090")).await;
    assert_eq!(status, 200);
    let (status, _) = admin_status(client().get(&url).header("host", "other.internal")).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_cross_site_post_cannot_reload_or_roll_back() {
    let host = HostBuilder::seed().start();
    let reload = format!("{}/admin/plugins/reload", host.admin);
    let rollback = format!("{}/admin/plugins/user-api/rollback", host.admin);
    for url in [&reload, &rollback] {
        // A form post from another site: a "simple" request, no CORS preflight.
        let (status, body) = admin_status(
            client()
                .post(url)
                .header("content-type", "text/plain")
                .header("origin", "http://attacker.example")
                .body("x"),
        )
        .await;
        assert_eq!(status, 403, "{url}: {body}");
        let (status, body) = admin_status(
            client()
                .post(url)
                .header("sec-fetch-site", "cross-site")
                .body("x"),
        )
        .await;
        assert_eq!(status, 403, "{url} without Origin: {body}");
    }
    // The admin page's own post (same origin), and curl's (no Origin), still work.
    let own_origin = host.admin.clone();
    let (status, body) = admin_status(
        client()
            .post(&reload)
            .header("origin", &own_origin)
            .header("sec-fetch-site", "same-origin"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin_status(client().post(&reload)).await;
    assert_eq!(status, 200, "{body}");
}
