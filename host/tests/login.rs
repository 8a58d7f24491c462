//! The seed's login, end to end: a real host, the three seed components, real HTTP, and a
//! real database (SQLite always; MariaDB and PostgreSQL when their URLs are set).

mod common;

use common::{
    HostBuilder, ScratchDatabase, TEST_SIGNING_KEY, TestHost, argon2id, client, login, sqlite_url,
};
use micro_api::sql::{Database, Value};
use serde_json::json;

const SEED_LOGIN: &str = "userName=micro&pwd=123";

/// The probe-http component, routed and granted rpc to auth, to verify tokens through auth.
const PROBE_ROUTE: &str = r#"
[[route]]
path = "/probe/{*rest}"
plugin = "probe-http"

[plugin.probe-http]
rpc = ["auth"]
"#;

async fn connect(url: &str) -> Box<dyn Database> {
    micro_api::sql::connect(url, 2)
        .await
        .expect("connect to the test database")
}

/// Every login case against one running host whose database is at `db_url`.
async fn login_scenario(host: &TestHost, db_url: &str) {
    // The seed request, exactly.
    let (status, body) = login(host, SEED_LOGIN).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["user"], json!({ "id": 10001, "name": "micro" }));
    let token = body["token"].as_str().expect("a token").to_string();

    // The token verifies independently with the host's key...
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&["micro-api"]);
    validation.set_audience(&["micro-api"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(TEST_SIGNING_KEY.as_bytes()).unwrap(),
        &validation,
    )
    .expect("the token verifies with the signing key")
    .claims;
    assert_eq!(claims["sub"], "10001");
    assert_eq!(claims["name"], "micro");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
    // ...and through the auth plugin; a tampered one does not.
    let verify = |token: String| async move {
        client()
            .post(host.url("/probe/call/auth/VerifyAccessToken"))
            .json(&json!({ "token": token }))
            .send()
            .await
            .unwrap()
    };
    let verified = verify(token.clone()).await;
    assert_eq!(verified.status(), 200);
    let verified: serde_json::Value = verified.json().await.unwrap();
    assert_eq!(verified["user_id"], 10001);
    assert_eq!(verified["user_name"], "micro");
    let mut tampered = token.clone();
    tampered.insert(tampered.len() - 2, 'x');
    assert_eq!(verify(tampered).await.status(), 401);

    // Wrong password, unknown user and a different case all get the same 401.
    let unauthorized =
        json!({ "error": { "code": "unauthorized", "message": "invalid user name or password" } });
    for body in [
        "userName=micro&pwd=1234",
        "userName=nobody&pwd=123",
        "userName=Micro&pwd=123",
    ] {
        let (status, answer) = login(host, body).await;
        assert_eq!((status, &answer), (401, &unauthorized), "{body}");
    }

    // Missing or empty fields.
    for body in ["userName=micro", "pwd=123", "userName=&pwd=123", ""] {
        let (status, answer) = login(host, body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
    }

    // The password is stored hashed.
    let db = connect(db_url).await;
    let rows = db
        .query(
            "SELECT `pwd` FROM `user` WHERE `user_name` = ?",
            &[Value::Text("micro".into())],
        )
        .await
        .unwrap();
    let Value::Text(stored) = &rows.rows[0][0] else {
        panic!("pwd is text: {rows:?}");
    };
    assert!(stored.starts_with("$argon2id$"), "{stored}");

    // A second user with its own hash logs in and gets its own claims.
    db.execute(
        "INSERT INTO `user` (`user_id`, `user_name`, `pwd`) VALUES (?, ?, ?)",
        &[
            Value::Integer(10002),
            Value::Text("alice".into()),
            Value::Text(argon2id("wonderland")),
        ],
    )
    .await
    .unwrap();
    let (status, body) = login(host, "userName=alice&pwd=wonderland").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"], json!({ "id": 10002, "name": "alice" }));

    // After micro's hash changes, 123 no longer logs in.
    db.execute(
        "UPDATE `user` SET `pwd` = ? WHERE `user_name` = ?",
        &[Value::Text(argon2id("456")), Value::Text("micro".into())],
    )
    .await
    .unwrap();
    assert_eq!(login(host, SEED_LOGIN).await.0, 401);
    assert_eq!(login(host, "userName=micro&pwd=456").await.0, 200);
}

fn seed_host(db_url: Option<&str>) -> TestHost {
    HostBuilder::seed()
        .plugins(&["probe-http"])
        .config(PROBE_ROUTE)
        .database(db_url)
        .start()
}

#[tokio::test]
async fn login_on_sqlite() {
    let host = seed_host(None);
    login_scenario(&host, &sqlite_url(&host)).await;
}

#[tokio::test]
async fn login_on_mariadb_and_postgres() {
    for (kind, admin_url) in common::external_databases() {
        let db = ScratchDatabase::create(kind, &admin_url).await;
        let host = seed_host(Some(&db.url));
        login_scenario(&host, &db.url).await;
        host.stop();
        db.drop_database().await;
        eprintln!("login scenario passed on {kind}");
    }
}

#[tokio::test]
async fn the_front_refuses_bad_requests_with_the_error_shape() {
    let host = HostBuilder::seed().start();
    let http = client();

    let response = http.get(host.url("/user/login")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");

    let response = http
        .post(host.url("/user/login"))
        .header("content-type", "application/json")
        .body(r#"{"userName":"micro","pwd":"123"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type");

    // Too large by its Content-Length: refused before the body is read.
    let answer = common::raw_http(
        &host.http,
        "POST /user/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 2097152\r\n\r\nuserName=",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    // Too large while streaming (chunked, no length): refused once past the limit.
    let chunk = "a".repeat(600 * 1024);
    let request = format!(
        "POST /user/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n",
        chunk.len(),
        chunk.len()
    );
    let answer = common::raw_http(&host.http, &request).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let response = http.get(host.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    // A charset parameter is still a form.
    let response = http
        .post(host.url("/user/login"))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(SEED_LOGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
