//! The admin page in headless Chromium (`MICRO_API_TEST_CHROMIUM`, else `SKIPPED`): the
//! plugins, their versions, the breakers and live rates, and a screenshot of it.

use std::time::Duration;

use crate::SEED_LOGIN;
use crate::common::{HostBuilder, client, login};

/// The browser the admin page test drives (Debian's `chromium`), or `None` after saying
/// the test is skipped.
fn chromium(test: &str) -> Option<String> {
    match std::env::var("MICRO_API_TEST_CHROMIUM") {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            eprintln!("SKIPPED {test}: set MICRO_API_TEST_CHROMIUM to a chromium binary to run it");
            None
        }
    }
}

/// Runs headless Chromium on `url` for `virtual_ms` of page time with `extra` arguments;
/// its stdout.
fn run_chromium(browser: &str, url: &str, virtual_ms: u32, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={virtual_ms}"))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn chart_points(dom: &str) -> u32 {
    let at = dom
        .find("id=\"requests-chart\"")
        .unwrap_or_else(|| panic!("no chart: {dom}"));
    let rest = &dom[at..];
    let value = rest
        .split("data-points=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .unwrap();
    value.parse().unwrap()
}

#[tokio::test]
async fn the_admin_page_shows_plugins_breakers_and_live_rates_in_chromium() {
    let Some(browser) = chromium("the_admin_page_shows_plugins_breakers_and_live_rates") else {
        return;
    };
    const TOKEN: &str = "admin-page-test-token-0123456789";
    let host = HostBuilder::seed().admin_token(TOKEN).start();
    let (status, _) = login(&host, SEED_LOGIN).await;
    assert_eq!(status, 200);
    // The page itself needs no token (it holds no data); its script sends the fragment's.
    let page = client()
        .get(format!("{}/admin/", host.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let url = format!("{}/admin/#token={TOKEN}", host.admin);
    let plugins = host.admin_plugins().await;

    let first = run_chromium(&browser, &url, 3000, &["--dump-dom"]);
    for plugin in plugins["plugins"].as_array().unwrap() {
        let (name, version) = (
            plugin["name"].as_str().unwrap(),
            plugin["version"].as_str().unwrap(),
        );
        assert!(
            first.contains(&format!("<td>{name}</td>")),
            "{name} in {first}"
        );
        assert!(
            first.contains(&format!("<td>{version}</td>")),
            "{version} in {first}"
        );
    }
    assert!(first.contains("<td>user.CheckPassword</td>"), "{first}");
    assert!(
        first.contains("<td class=\"closed\">closed</td>"),
        "{first}"
    );
    let early = chart_points(&first);
    for _ in 0..3 {
        login(&host, SEED_LOGIN).await;
    }
    let later = run_chromium(&browser, &url, 8000, &["--dump-dom"]);
    assert!(
        chart_points(&later) > early,
        "the charts grow: {early} points, then {}",
        chart_points(&later)
    );
    // Without the token the page says so and asks for it.
    let refused = run_chromium(
        &browser,
        &format!("{}/admin/", host.admin),
        2000,
        &["--dump-dom"],
    );
    assert!(refused.contains("unauthorized"), "{refused}");

    let artifacts =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("admin-page.png");
    // Logins while the page runs, so the screenshot's charts show a rate.
    let traffic = {
        let url = host.url("/user/login");
        tokio::spawn(async move {
            loop {
                let _ = client()
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(SEED_LOGIN)
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let screenshot = [
        format!("--screenshot={}", shot.display()),
        "--window-size=1200,900".into(),
    ];
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = screenshot.iter().map(String::as_str).collect();
        run_chromium(&browser, &url, 5000, &args)
    })
    .await
    .unwrap();
    traffic.abort();
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 1000,
        "a screenshot at {}",
        shot.display()
    );
}
