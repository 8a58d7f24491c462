//! The broker across hosts over a real nats-server of the test's own: user-api publishes a
//! `user.login` event on host 1, the audit subscriber writes it on host 2. Delivery is at
//! most once: never twice, and after a NATS restart the hosts reconnect by themselves.

mod common;

use std::time::{Duration, Instant};

use common::{
    HostBuilder, NatsServer, ScratchDatabase, TestHost, admin_json, external_databases, login,
    median, nats_server_bin, sqlite_url,
};

/// Failed logins are this test's events: let one address fail often.
const GENEROUS_LIMITS: &str = "[login_limit]\nmax_failures_per_address = 10000\n";

fn broker_config(nats: &NatsServer, prefix: &str) -> String {
    format!(
        "[broker]\nbackend = \"nats\"\nurl = {:?}\nprefix = {prefix:?}\n",
        nats.url()
    )
}

fn unique_prefix() -> String {
    format!("test{}", rand::random::<u32>())
}

/// Host 1: the seed (user-api publishes), no audit plugin.
fn publisher(nats: &NatsServer, prefix: &str) -> TestHost {
    HostBuilder::seed()
        .config(&broker_config(nats, prefix))
        .config(GENEROUS_LIMITS)
        .start()
}

/// Host 2: only the audit subscriber, on `database` (its own SQLite when `None`).
fn auditor(nats: &NatsServer, prefix: &str, database: Option<&str>) -> TestHost {
    HostBuilder::new()
        .plugins(&["audit"])
        .config("[plugin.audit]\nsql = true\nsubscribe = [\"user.login\"]\n")
        .config(&broker_config(nats, prefix))
        .database(database)
        .start()
}

/// Waits until `host`'s broker is connected and serves `subscriptions` (plugin/topic).
async fn wait_broker(host: &TestHost, subscriptions: &[&str]) {
    let started = Instant::now();
    loop {
        let status = admin_json(host, "/admin/broker").await;
        let serving: Vec<String> = status["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{}/{}",
                    s["plugin"].as_str().unwrap(),
                    s["topic"].as_str().unwrap()
                )
            })
            .collect();
        if status["connected"] == true && serving == subscriptions {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "broker not ready: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One row of `audit_log`.
#[derive(Debug, Clone, PartialEq)]
struct AuditRow {
    event_id: String,
    user_name: String,
    user_id: Option<i64>,
    success: bool,
    remote_addr: String,
}

/// Every row of `audit_log` in the database at `url`.
async fn audit_rows(url: &str) -> Vec<AuditRow> {
    use sqlx::Connection;
    const SELECT: &str =
        "SELECT event_id, user_name, user_id, success, remote_addr FROM audit_log ORDER BY id";
    let row = |(event_id, user_name, user_id, success, remote_addr): (
        String,
        String,
        Option<i64>,
        i64,
        String,
    )| AuditRow {
        event_id,
        user_name,
        user_id,
        success: success == 1,
        remote_addr,
    };
    if url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let rows: Vec<(String, String, Option<i64>, i64, String)> =
            sqlx::query_as(SELECT).fetch_all(&mut c).await.unwrap();
        rows.into_iter().map(row).collect()
    } else if url.starts_with("mysql") {
        let mut c = sqlx::MySqlConnection::connect(url).await.unwrap();
        let rows: Vec<(String, String, Option<u64>, i8, String)> =
            sqlx::query_as(SELECT).fetch_all(&mut c).await.unwrap();
        rows.into_iter()
            .map(|(e, n, id, s, a)| row((e, n, id.map(|i| i as i64), s.into(), a)))
            .collect()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let rows: Vec<(String, String, Option<i64>, i16, String)> =
            sqlx::query_as(SELECT).fetch_all(&mut c).await.unwrap();
        rows.into_iter()
            .map(|(e, n, id, s, a)| row((e, n, id, s.into(), a)))
            .collect()
    }
}

/// Waits until `audit_log` holds at least `n` rows, and returns them.
async fn wait_rows(url: &str, n: usize, limit: Duration) -> Vec<AuditRow> {
    let started = Instant::now();
    loop {
        let rows = audit_rows(url).await;
        if rows.len() >= n || started.elapsed() > limit {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn login_as(host: &TestHost, user: &str, pwd: &str) -> u16 {
    login(host, &format!("userName={user}&pwd={pwd}")).await.0
}

/// One run of the cross-host audit on host 2's database `url`.
async fn audit_across_hosts(
    nats: &NatsServer,
    database: Option<&str>,
    read_url: impl Fn(&TestHost) -> String,
) {
    let prefix = unique_prefix();
    let host2 = auditor(nats, &prefix, database);
    let host1 = publisher(nats, &prefix);
    wait_broker(&host2, &["audit/user.login"]).await;
    wait_broker(&host1, &[]).await;
    let url = read_url(&host2);

    assert_eq!(login_as(&host1, "micro", "123").await, 200);
    assert_eq!(login_as(&host1, "micro", "wrong-password-7e1").await, 401);
    assert_eq!(login_as(&host1, "nobody", "wrong-password-7e2").await, 401);
    let rows = wait_rows(&url, 3, Duration::from_secs(10)).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    let ok = &rows
        .iter()
        .find(|r| r.success)
        .expect("the success is audited");
    assert_eq!((ok.user_name.as_str(), ok.user_id), ("micro", Some(10001)));
    assert_eq!(ok.remote_addr, "127.0.0.1");
    let failures: Vec<_> = rows.iter().filter(|r| !r.success).collect();
    assert_eq!(failures.len(), 2);
    assert!(failures.iter().all(|r| r.user_id.is_none()));
    assert!(failures.iter().any(|r| r.user_name == "nobody"));
    // The password never travels: not in the table, not in either host's log.
    let everything = format!(
        "{rows:?}{}{}",
        host1.logs().join("\n"),
        host2.logs().join("\n")
    );
    assert!(
        !everything.contains("wrong-password-7e"),
        "a password leaked"
    );
    // Host 1 serves no subscriber, so it never took a message from the queue group.
    let status1 = admin_json(&host1, "/admin/broker").await;
    assert_eq!(status1["stats"]["published"], 3, "{status1}");
    assert_eq!(status1["stats"]["delivered"], 0, "{status1}");
    // A delivery is counted once its instance has ended, just after its row is written.
    let status2 = wait_stat(&host2, "delivered", 3).await;
    assert_eq!(status2["stats"]["failed"], 0, "{status2}");
}

/// Host's `/admin/broker` once its `stats.<name>` has reached `n` (10 s at most).
async fn wait_stat(host: &TestHost, name: &str, n: u64) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let status = admin_json(host, "/admin/broker").await;
        if status["stats"][name].as_u64() >= Some(n) {
            assert_eq!(status["stats"][name], n, "{status}");
            return status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_login_on_host_1_is_audited_by_host_2_over_nats() {
    let Some(bin) = nats_server_bin("a_login_on_host_1_is_audited_by_host_2_over_nats") else {
        return;
    };
    let nats = NatsServer::start(&bin);
    audit_across_hosts(&nats, None, sqlite_url).await;
    for (kind, admin_url) in external_databases() {
        let db = ScratchDatabase::create(kind, &admin_url).await;
        let url = db.url.clone();
        audit_across_hosts(&nats, Some(&db.url), |_| url.clone()).await;
        db.drop_database().await;
    }
}

#[tokio::test]
async fn in_process_a_login_is_audited_on_the_same_host() {
    let host = HostBuilder::seed()
        .plugins(&["audit"])
        .config("[plugin.audit]\nsql = true\nsubscribe = [\"user.login\"]\n")
        .start();
    wait_broker(&host, &["audit/user.login"]).await;
    assert_eq!(login_as(&host, "micro", "123").await, 200);
    let rows = wait_rows(&sqlite_url(&host), 1, Duration::from_secs(10)).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].user_id, rows[0].success), (Some(10001), true));
    let status = wait_stat(&host, "delivered", 1).await;
    assert_eq!(status["backend"], "memory", "{status}");
}

#[tokio::test]
async fn a_subscriber_that_fails_costs_the_login_nothing() {
    // audit can hardly finish within 1 ms: most deliveries end at their deadline.
    let host = HostBuilder::seed()
        .plugins(&["audit"])
        .config("[plugin.audit]\nsql = true\nsubscribe = [\"user.login\"]\nlimits = { deadline_ms = 1 }\n")
        .config("[plugins]\nprobation_requests = 0\n")
        .start();
    wait_broker(&host, &["audit/user.login"]).await;
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(login_as(&host, "micro", "123").await, 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    loop {
        let status = admin_json(&host, "/admin/broker").await;
        let stats = &status["stats"];
        let count = |name: &str| stats[name].as_u64().unwrap();
        // The deadline is checked every epoch tick (5 ms): a quick delivery may still finish.
        if count("failed") + count("dropped") + count("delivered") == 10 {
            assert_eq!(count("published"), 10, "{status}");
            assert!(count("failed") > 0, "{status}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A delivery may have written its row before its deadline ended it; none is retried,
    // so none is written twice.
    assert!(audit_rows(&sqlite_url(&host)).await.len() <= 10);
}

/// Failed logins of `user` as `count` distinct names `<user>-<i>`, each answered quickly.
async fn failed_logins(host: &TestHost, user: &str, count: usize) {
    for i in 0..count {
        let started = Instant::now();
        assert_eq!(login_as(host, &format!("{user}-{i}"), "x").await, 401);
        // Publishing never waits for NATS, even while it is down.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a login took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn after_a_nats_restart_the_hosts_reconnect_and_later_events_arrive_once() {
    let Some(bin) = nats_server_bin("after_a_nats_restart_the_hosts_reconnect") else {
        return;
    };
    let mut nats = NatsServer::start(&bin);
    let prefix = unique_prefix();
    let host2 = auditor(&nats, &prefix, None);
    let host1 = publisher(&nats, &prefix);
    wait_broker(&host2, &["audit/user.login"]).await;
    wait_broker(&host1, &[]).await;
    let url = sqlite_url(&host2);

    failed_logins(&host1, "before", 5).await;
    assert_eq!(wait_rows(&url, 5, Duration::from_secs(10)).await.len(), 5);

    nats.stop();
    failed_logins(&host1, "during", 3).await;
    nats.resume();
    let reconnect = Instant::now();
    wait_broker(&host1, &[]).await;
    wait_broker(&host2, &["audit/user.login"]).await;
    // Reconnected clients re-subscribe as they connect; a marker event that arrives shows
    // the path is whole again (each marker is an event too, counted below).
    let mut markers = 0;
    loop {
        let have = audit_rows(&url).await.len();
        assert_eq!(
            login_as(&host1, &format!("marker-{markers}"), "x").await,
            401
        );
        markers += 1;
        if wait_rows(&url, have + 1, Duration::from_millis(500))
            .await
            .len()
            > have
        {
            break;
        }
        assert!(markers < 40, "no event arrived after the restart");
    }
    eprintln!(
        "events flowing again {:?} after nats-server restarted",
        reconnect.elapsed()
    );
    failed_logins(&host1, "after", 5).await;
    let started = Instant::now();
    while audit_rows(&url)
        .await
        .iter()
        .filter(|r| r.user_name.starts_with("after-"))
        .count()
        < 5
        && started.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Room for a late duplicate to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows = audit_rows(&url).await;

    let named = |phase: &str| {
        rows.iter()
            .filter(|r| r.user_name.starts_with(phase))
            .count()
    };
    // At most once: every event published while connected arrived, exactly once; an event
    // published while NATS was down may be lost, and is never duplicated.
    assert_eq!(named("before-"), 5, "{rows:?}");
    assert_eq!(named("after-"), 5, "{rows:?}");
    assert!(named("during-") <= 3, "{rows:?}");
    assert!(named("marker-") <= markers, "{rows:?}");
    let mut ids: Vec<_> = rows.iter().map(|r| &r.event_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), rows.len(), "an event was written twice");
    let status2 = admin_json(&host2, "/admin/broker").await;
    assert_eq!(
        status2["stats"]["failed"], 0,
        "a delivery failed (a duplicate?): {status2}"
    );
    eprintln!(
        "published during the outage: 3, arrived: {}",
        named("during-")
    );
}

/// The broker's figures; run with
/// `cargo xtask test --test broker -- --ignored --nocapture broker_figures`.
#[tokio::test]
#[ignore = "a measurement, not a check: run it on purpose"]
async fn broker_figures() {
    let Some(bin) = nats_server_bin("broker_figures") else {
        return;
    };
    let nats = NatsServer::start(&bin);
    let prefix = unique_prefix();
    let host2 = auditor(&nats, &prefix, None);
    let host1 = publisher(&nats, &prefix);
    wait_broker(&host2, &["audit/user.login"]).await;
    let url = sqlite_url(&host2);
    // Delivery: login answered on host 1 -> row visible in host 2's database.
    let mut delivery = Vec::new();
    let mut with_nats = Vec::new();
    for i in 0..50 {
        let started = Instant::now();
        assert_eq!(login_as(&host1, "micro", "123").await, 200);
        with_nats.push(started.elapsed());
        let answered = Instant::now();
        assert_eq!(
            wait_rows(&url, i + 1, Duration::from_secs(10)).await.len(),
            i + 1
        );
        delivery.push(answered.elapsed());
    }
    // The same login on a host whose broker is in-process with no subscriber.
    let alone = HostBuilder::seed().start();
    let mut in_process = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        assert_eq!(login_as(&alone, "micro", "123").await, 200);
        in_process.push(started.elapsed());
    }
    eprintln!(
        "median of 50: login publishing over NATS {:?}, login publishing in-process (no subscriber) {:?}, login answered -> audit row on host 2 {:?}",
        median(with_nats),
        median(in_process),
        median(delivery)
    );
}
