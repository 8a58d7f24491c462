//! Attacks on the login limiter (issue 16, items 3 to 8), each performed over real
//! connections against a real host: a Content-Type the host cannot read, parallel
//! guesses, guesses whose client hangs up, a huge user name, a lockout of the owner from
//! another address, and MariaDB's trailing-space twins of a name.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::{HostBuilder, ScratchDatabase, TestHost, client, login_answer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SEED_LOGIN: &str = "userName=micro&pwd=123";
const WRONG: &str = "userName=micro&pwd=wrong";

fn limited_host(limits: &str) -> TestHost {
    HostBuilder::seed()
        .config(&format!("[login_limit]\n{limits}\n"))
        .start()
}

fn authority(host: &TestHost) -> String {
    host.url("").trim_start_matches("http://").to_string()
}

/// Sends `head` + `body` as one HTTP/1.1 request on a fresh connection and returns the
/// status line's code.
async fn raw_status(host: &TestHost, head: &[u8], body: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(authority(host)).await.unwrap();
    stream.write_all(head).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

fn login_head(host: &TestHost, content_type: &[u8], body: &[u8]) -> Vec<u8> {
    let mut head =
        format!("POST /user/login HTTP/1.1\r\nHost: {}\r\n", authority(host)).into_bytes();
    head.extend_from_slice(b"Content-Type: ");
    head.extend_from_slice(content_type);
    head.extend_from_slice(
        format!(
            "\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    head
}

#[tokio::test]
async fn a_content_type_the_host_cannot_read_is_refused_not_left_uncounted() {
    let host = limited_host("max_failures = 3");
    // charset=<U+00E9 as one raw byte>: not a string the host can read.
    let content_type = b"application/x-www-form-urlencoded; charset=\xe9";
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let body = WRONG.as_bytes();
        statuses.push(raw_status(&host, &login_head(&host, content_type, body), body).await);
    }
    assert!(
        statuses.iter().all(|s| *s == 415),
        "each is refused before its password is checked: {statuses:?}"
    );
    // Nothing was counted, nothing was checked: the owner logs in.
    assert_eq!(login_answer(&host, SEED_LOGIN).await.status, 200);
}

#[tokio::test]
async fn parallel_guesses_on_a_fresh_name_stop_at_the_limit() {
    let host = limited_host("max_failures = 5\nmax_failures_per_address = 100");
    let guesses = (0..12).map(|_| login_answer(&host, WRONG));
    let statuses: Vec<u16> = futures::future::join_all(guesses)
        .await
        .into_iter()
        .map(|a| a.status)
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert!(checked <= 5, "at most 5 password checks: {statuses:?}");
    assert_eq!(checked + throttled, 12, "{statuses:?}");
}

#[tokio::test]
async fn a_guess_whose_client_hangs_up_is_still_counted() {
    let host = limited_host("max_failures = 3\nmax_failures_per_address = 100");
    let body = WRONG.as_bytes();
    let head = login_head(&host, b"application/x-www-form-urlencoded", body);
    for _ in 0..3 {
        let mut stream = TcpStream::connect(authority(&host)).await.unwrap();
        stream.write_all(&head).await.unwrap();
        stream.write_all(body).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        // A reset, not a polite close: the host learns at once that nobody waits. (Linger
        // zero does not block on drop, which is why tokio deprecates linger in general.)
        #[allow(deprecated)]
        stream.set_linger(Some(Duration::ZERO)).unwrap();
        drop(stream);
    }
    // Let the host see the resets and settle the three attempts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = login_answer(&host, SEED_LOGIN).await;
    assert_eq!(
        answer.status, 429,
        "three abandoned guesses count as three failures: {}",
        answer.body
    );
}

#[tokio::test]
async fn a_huge_user_name_is_refused_before_it_is_stored() {
    let host = limited_host("");
    let rss_before = host.rss_kib();
    let form = format!("userName={}&pwd=x", "a".repeat(1_000_000));
    let answer = login_answer(&host, &form).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], "bad_request");
    let answer = login_answer(&host, &format!("userName={}&pwd=x", "a".repeat(21))).await;
    assert_eq!(answer.status, 400, "longer than the varchar(20) column");
    let grown = host.rss_kib().saturating_sub(rss_before);
    assert!(grown < 20_000, "RSS grew by {grown} KiB for one name");
    assert_eq!(login_answer(&host, SEED_LOGIN).await.status, 200);
}

#[tokio::test]
async fn failures_from_one_address_do_not_lock_the_owner_out() {
    let host = limited_host("max_failures = 5");
    for _ in 0..5 {
        assert_eq!(login_answer(&host, WRONG).await.status, 401);
    }
    assert_eq!(
        login_answer(&host, SEED_LOGIN).await.status,
        429,
        "the guesser is stopped"
    );
    // The owner, from another address that has not failed, still gets in.
    let owner = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap();
    let response = owner
        .post(host.url("/user/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(SEED_LOGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

#[tokio::test]
async fn names_with_trailing_spaces_are_not_new_keys_for_one_account_on_mariadb() {
    let Some(admin_url) = std::env::var("MICRO_API_TEST_MYSQL_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("SKIPPED: set MICRO_API_TEST_MYSQL_URL to run this test on MariaDB");
        return;
    };
    let db = ScratchDatabase::create("mysql", &admin_url).await;
    let host = HostBuilder::seed()
        .config("[login_limit]\nmax_failures = 2\n")
        .database(Some(&db.url))
        .start();
    for _ in 0..2 {
        assert_eq!(login_answer(&host, WRONG).await.status, 401);
    }
    // `micro ` would match `micro` under the PAD SPACE collation, with guesses of its own.
    for padded in ["micro%20", "micro%20%20", "%20micro", "micro%09"] {
        let answer = login_answer(&host, &format!("userName={padded}&pwd=123")).await;
        assert_eq!(answer.status, 400, "{padded}: {}", answer.body);
    }
    let answer = client()
        .post(host.url("/user/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(SEED_LOGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 429);
    host.stop();
    db.drop_database().await;
}
