//! Hostile input, generated: property tests of every parser that faces it (forms, route
//! patterns, the config, tokens, the SQL rewriter, SQL values and rpc errors at the WIT
//! boundary, rpc payloads), and random malformed HTTP thrown at a running host.
//!
//! proptest rather than cargo-fuzz: it runs on the stable toolchain, inside `cargo test`,
//! seeded, so CI runs every target briefly on each change. Each target prints how many
//! inputs it ran. A longer run: `PROPTEST_CASES=200000 MICRO_API_FUZZ_HTTP_CASES=20000
//! cargo test --release -p micro-api --test fuzz -- --nocapture` (`PROPTEST_RNG_SEED`
//! picks another seed).

mod common;

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use micro_api::config::{AuthConfig, Config, LoginLimitConfig, RouteAuth, RouteConfig};
use micro_api::crypto::Crypto;
use micro_api::front::login_limit::LoginLimiter;
use micro_api::front::router::{PathPattern, Routed, Router};
use micro_api::sql::Value;
use micro_api_sdk::http::Form;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestCaseError, TestRunner};

/// Runs `property` on `cases` inputs of `strategy` (or `PROPTEST_CASES`), with a fixed seed
/// unless `PROPTEST_RNG_SEED` is set, and reports the count.
fn fuzz<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: Debug,
{
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x6d69_6372_6f2d_6170);
    }
    config.failure_persistence = None;
    let inputs = AtomicU64::new(0);
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        inputs.fetch_add(1, Relaxed);
        property(input)
    });
    if let Err(e) = result {
        panic!("fuzz target {name}: {e}");
    }
    eprintln!(
        "fuzz target {name}: {} inputs, 0 failures",
        inputs.load(Relaxed)
    );
}

/// Bytes that are mostly `pieces` glued together, with arbitrary bytes among them: the
/// interesting inputs of a parser come up far more often than from random bytes alone.
fn glued(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => proptest::sample::select(pieces).prop_map(|p| p.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..8),
        1 => "\\PC{0,6}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec(piece, 0..max).prop_map(|parts| parts.concat())
}

// --- Forms -----------------------------------------------------------------------------

const FORM_PIECES: &[&str] = &[
    "userName",
    "pwd",
    "=",
    "&",
    "&&",
    "==",
    "+",
    "%",
    "%2",
    "%20",
    "%26",
    "%3D",
    "%ff",
    "%FE",
    "%00",
    "%C3%A9",
    "micro",
    "123",
    ";",
    "userName=",
    "&userName=",
    "\u{e9}",
    "\u{1f600}",
];

#[test]
fn form_parser() {
    let limiter = LoginLimiter::new(&LoginLimitConfig::default()).unwrap();
    let form_type = Some("application/x-www-form-urlencoded");
    fuzz("form parser", 4_000, glued(FORM_PIECES, 24), |body| {
        let form = Form::parse(&body);
        // The host counts failed logins against the same name the plugin checks.
        let plugin = form
            .get("userName")
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        prop_assert_eq!(limiter.user_name(form_type, &body), plugin);
        Ok(())
    });
    let pairs = proptest::collection::vec(("\\PC{0,12}", "\\PC{0,12}"), 0..8);
    fuzz("form round trip", 2_000, pairs, |pairs| {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        prop_assert_eq!(Form::parse(body.as_bytes()).0, pairs);
        Ok(())
    });
}

// --- Routes ----------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A valid pattern, a path it matches, and one it does not (none for `/{*rest}`, which
/// matches every path).
fn pattern_and_paths() -> impl Strategy<Value = (String, String, Option<String>)> {
    let segment = prop_oneof![
        "[a-z0-9._~-]{1,6}".prop_map(Segment::Literal),
        "[a-z]{1,4}".prop_map(Segment::Param),
    ];
    (
        proptest::collection::vec(segment, 0..6),
        any::<bool>(),
        proptest::collection::vec("[^/]{1,6}", 6),
        "(/[^/]{0,4}){0,3}",
    )
        .prop_map(|(segments, rest, values, tail)| {
            let mut pattern = String::new();
            let mut path = String::new();
            for (segment, value) in segments.iter().zip(&values) {
                match segment {
                    Segment::Literal(l) => {
                        pattern.push_str(&format!("/{l}"));
                        path.push_str(&format!("/{l}"));
                    }
                    Segment::Param(p) => {
                        pattern.push_str(&format!("/{{{p}}}"));
                        path.push_str(&format!("/{value}"));
                    }
                }
            }
            let mut other = Some(format!("{path}/extra"));
            if rest {
                pattern.push_str("/{*rest}");
                // Only a literal segment can make a path miss a pattern ending in a rest.
                other = segments
                    .iter()
                    .position(|s| matches!(s, Segment::Literal(_)))
                    .map(|i| {
                        let mut parts: Vec<String> = path.split('/').map(str::to_owned).collect();
                        parts[i + 1].push('~');
                        parts.join("/")
                    });
                path.push_str(&tail);
            }
            if pattern.is_empty() {
                pattern.push('/');
                path.push('/');
            }
            (pattern, path, other)
        })
}

#[test]
fn route_patterns() {
    fuzz(
        "route pattern parser",
        4_000,
        (
            glued(
                &["/", "{", "}", "*", "{*", "{a}", "{*r}", "a", "//", "%2F"],
                12,
            ),
            "\\PC{0,40}",
        ),
        |(pattern, path)| {
            let pattern = String::from_utf8_lossy(&pattern).into_owned();
            if let Ok(parsed) = PathPattern::parse(&pattern) {
                parsed.matches(&path);
                let router = Router::new(&[RouteConfig {
                    path: pattern.clone(),
                    methods: vec!["GET".into()],
                    plugin: "p".into(),
                    auth: RouteAuth::None,
                }]);
                let _ = router.route(&http::Method::POST, &path);
            }
            Ok(())
        },
    );
    fuzz(
        "route matcher",
        4_000,
        pattern_and_paths(),
        |(pattern, path, other)| {
            let parsed = PathPattern::parse(&pattern).map_err(TestCaseError::fail)?;
            prop_assert!(parsed.matches(&path), "{pattern} should match {path}");
            if let Some(other) = &other {
                prop_assert!(!parsed.matches(other), "{pattern} should not match {other}");
            }
            let router = Router::new(&[RouteConfig {
                path: pattern.clone(),
                methods: vec![],
                plugin: "p".into(),
                auth: RouteAuth::Required,
            }]);
            prop_assert!(
                matches!(router.route(&http::Method::GET, &path), Routed::Route(r) if r.auth == RouteAuth::Required)
            );
            Ok(())
        },
    );
}

// --- Config ----------------------------------------------------------------------------

const CONFIG_PIECES: &[&str] = &[
    "\n",
    "\n[server]\n",
    "\n[front]\n",
    "\n[admin]\n",
    "\n[login_limit]\n",
    "\n[[route]]\n",
    "\n[plugin.x]\n",
    "\n[plugin.x.limits]\n",
    "\n[breaker.default]\n",
    "\n[breaker.\"a.b\"]\n",
    "\n[plugins.pool]\n",
    "\n[database]\n",
    "\n[auth]\n",
    "\n[cluster]\n",
    "listen = ",
    "body_limit = ",
    "max_connections = ",
    "max_header_bytes = ",
    "header_read_timeout_ms = ",
    "token = ",
    "path = ",
    "plugin = ",
    "auth = ",
    "methods = ",
    "rpc = ",
    "http = ",
    "memory_mb = ",
    "instances = ",
    "url = ",
    "window_secs = ",
    "max_failures = ",
    "error_percent = ",
    "\"required\"",
    "\"none\"",
    "\"/a/{b}\"",
    "\"/{*r}\"",
    "\"x\"",
    "\"127.0.0.1:0\"",
    "\"sqlite::memory:\"",
    "\"oracle://\"",
    "0",
    "1",
    "-1",
    "8192",
    "4294967296",
    "18446744073709551616",
    "1e309",
    "nan",
    "true",
    "[\"GET\", \"BREW\"]",
    "[]",
    "{}",
    "{ memory_mb = 0 }",
    "\"http://127.0.0.1:*\"",
    "=",
    "[",
    "]",
    "\"",
    "'",
    "#",
    "\\u0000",
    "data_dir = \"d\"",
];

#[test]
fn config_parser() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let env = proptest::collection::vec(
        (
            prop_oneof![
                Just("MICRO_API__SERVER__BODY_LIMIT".to_string()),
                Just("MICRO_API__ADMIN__TOKEN".to_string()),
                Just("MICRO_API__FRONT__MAX_CONNECTIONS".to_string()),
                Just("MICRO_API____X".to_string()),
                Just("MICRO_API__SERVER".to_string()),
                "MICRO_API__[A-Z_]{0,20}",
            ],
            "\\PC{0,12}",
        ),
        0..3,
    );
    fuzz(
        "config parser",
        1_000,
        (glued(CONFIG_PIECES, 30), env),
        |(text, env)| {
            std::fs::write(&path, &text).unwrap();
            if let Ok(config) = Config::load_with_env(Some(&path), env) {
                prop_assert!(config.validate().is_empty());
                Router::new(&config.route);
            }
            Ok(())
        },
    );
}

// --- Tokens ----------------------------------------------------------------------------

fn crypto() -> Crypto {
    Crypto::from_config(&AuthConfig {
        signing_key: Some("fuzz-signing-key-0123456789abcdef".into()),
        ..AuthConfig::default()
    })
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn token_parser() {
    let c = crypto();
    let token = c.sign_token(r#"{"sub":"1","name":"micro"}"#, 600).unwrap();
    // Arbitrary text, and tokens built of plausible parts: never accepted.
    let header = prop_oneof![
        proptest::sample::select(
            &[
                "none", "HS256", "HS384", "HS512", "RS256", "ES256", "EdDSA", ""
            ][..]
        )
        .prop_map(|alg| format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)),
        "\\PC{0,40}",
    ];
    let part = prop_oneof![
        "[A-Za-z0-9_-]{0,60}",
        "\\PC{0,40}".prop_map(|s| b64(s.as_bytes())),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| b64(&b)),
    ];
    let forged =
        (header, "\\PC{0,80}", part.clone(), 0..5usize).prop_map(|(h, claims, sig, dots)| {
            let mut token = format!("{}.{}.{sig}", b64(h.as_bytes()), b64(claims.as_bytes()));
            token.push_str(&".".repeat(dots));
            token
        });
    fuzz(
        "token parser",
        4_000,
        prop_oneof!["\\PC{0,200}", forged],
        |token| {
            prop_assert!(c.verify_token(&token).is_err(), "accepted {token}");
            Ok(())
        },
    );
    // A signed token changed in any one character is refused.
    let positions = (0..token.len(), proptest::char::range('-', 'z'));
    fuzz("token tampering", 4_000, positions, |(at, with)| {
        let mut tampered = token.clone().into_bytes();
        if tampered[at] == with as u8 || !with.is_ascii() {
            return Ok(());
        }
        tampered[at] = with as u8;
        let tampered = String::from_utf8(tampered).unwrap();
        prop_assert!(c.verify_token(&tampered).is_err(), "accepted {tampered}");
        Ok(())
    });
    // Whatever claims are signed come back as they were, the host's own aside.
    // Registered claims the host validates (`nbf`) or sets are left out: text there is refused.
    let claims =
        proptest::collection::btree_map("[a-z]{1,6}", "\\PC{0,10}", 0..6).prop_map(|mut claims| {
            claims.remove("nbf");
            claims
        });
    fuzz("token round trip", 1_000, claims, |claims| {
        let signed = c
            .sign_token(&serde_json::to_string(&claims).unwrap(), 60)
            .unwrap();
        let verified = c
            .verify_token(&signed)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (key, value) in &claims {
            if !["iss", "aud", "iat", "exp"].contains(&key.as_str()) {
                prop_assert_eq!(&verified[key], value);
            }
        }
        Ok(())
    });
}

// --- SQL -------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum SqlToken {
    Placeholder,
    Word(String),
    Backticked(String),
    Literal(String),
    EscapeLiteral(String),
    Quoted(String),
    LineComment(String),
    BlockComment(String),
    /// `$tag$body$tag$` (an empty tag is `$$...$$`).
    DollarQuoted(String, String),
}

fn sql_token() -> impl Strategy<Value = SqlToken> {
    prop_oneof![
        Just(SqlToken::Placeholder),
        "[a-z_][a-z0-9_]{0,6}|[ ,()=*<>+-]|[0-9]{1,3}".prop_map(SqlToken::Word),
        "[^`]{0,8}".prop_map(SqlToken::Backticked),
        "([^']|''){0,8}".prop_map(SqlToken::Literal),
        "([^'\\\\]|''|\\\\.){0,8}".prop_map(SqlToken::EscapeLiteral),
        "([^\"]|\"\"){0,8}".prop_map(SqlToken::Quoted),
        "[^\n]{0,10}".prop_map(SqlToken::LineComment),
        "([^*/]|/[^*/]|\\*[^*/]){0,6}".prop_map(SqlToken::BlockComment),
        // The body may hold `?`, quotes and other dollars, never its own delimiter.
        ("|[a-z_][a-z0-9_]{0,3}", "([^$]|\\$[^$a-z_]){0,8}")
            .prop_map(|(tag, body)| SqlToken::DollarQuoted(tag, body)),
    ]
}

#[test]
fn sql_rewriter() {
    use micro_api::sql::rewrite::for_postgres;
    fuzz("sql rewriter, any text", 4_000, "\\PC{0,120}", |sql| {
        let rewritten = for_postgres(&sql);
        prop_assert!(rewritten.matches('$').count() >= sql.matches('$').count());
        Ok(())
    });
    let statement = proptest::collection::vec(sql_token(), 0..16);
    fuzz("sql rewriter, literals", 4_000, statement, |tokens| {
        let (mut sql, mut expected, mut n) = (String::new(), String::new(), 0);
        for token in &tokens {
            // A space between tokens, so no two glue into one (`a` `E'x'` is not `aE'x'`).
            let (input, output) = match token {
                SqlToken::Placeholder => {
                    n += 1;
                    ("?".to_string(), format!("${n}"))
                }
                SqlToken::Word(w) => (w.clone(), w.clone()),
                SqlToken::Backticked(i) => {
                    (format!("`{i}`"), format!("\"{}\"", i.replace('"', "\"\"")))
                }
                SqlToken::Literal(l) => (format!("'{l}'"), format!("'{l}'")),
                SqlToken::EscapeLiteral(l) => (format!("E'{l}'"), format!("E'{l}'")),
                SqlToken::Quoted(q) => (format!("\"{q}\""), format!("\"{q}\"")),
                SqlToken::LineComment(c) => (format!("--{c}\n"), format!("--{c}\n")),
                SqlToken::BlockComment(c) => (format!("/*{c}*/"), format!("/*{c}*/")),
                SqlToken::DollarQuoted(tag, body) => {
                    let quoted = format!("${tag}${body}${tag}$");
                    (quoted.clone(), quoted)
                }
            };
            sql.push_str(&input);
            sql.push(' ');
            expected.push_str(&output);
            expected.push(' ');
        }
        prop_assert_eq!(for_postgres(&sql), expected, "{}", sql);
        Ok(())
    });
}

fn sql_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Integer),
        any::<f64>()
            .prop_filter("SQLite stores NaN as NULL", |f| !f.is_nan())
            .prop_map(Value::Real),
        "\\PC{0,40}".prop_map(Value::Text),
        "[\\x00-\\x7f]{0,10}".prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Blob),
    ]
}

#[test]
fn sql_values_at_the_wit_boundary() {
    use micro_api::bindings::micro_api::host::sql as wit;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("fuzz.db").display());
    let db = runtime.block_on(micro_api::sql::connect(&url, 1)).unwrap();
    let values = proptest::collection::vec(sql_value(), 1..4);
    fuzz("sql values", 1_000, values, |values| {
        // Through the WIT type and back, then through a real SQLite and back.
        let through_wit: Vec<Value> = values
            .iter()
            .cloned()
            .map(wit::Value::from)
            .map(Value::from)
            .collect();
        prop_assert_eq!(&through_wit, &values);
        let select = format!("SELECT {}", vec!["?"; values.len()].join(", "));
        let rows = runtime
            .block_on(db.query(&select, &values))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&rows.rows[0], &values);
        let rows = wit::Rows::from(rows);
        prop_assert_eq!(rows.rows[0].len(), values.len());
        Ok(())
    });
}

// --- rpc -------------------------------------------------------------------------------

#[test]
fn rpc_errors_and_payloads() {
    use micro_api::bindings::{AppError, Error};
    use micro_api::rpc::CallError;
    use micro_api_sdk::http::HttpError;
    use micro_api_sdk::services::user::{CheckPassword, GetUserByName};

    let error = prop_oneof![
        Just(CallError::Timeout),
        Just(CallError::CircuitOpen),
        Just(CallError::Rejected),
        "\\PC{0,20}".prop_map(CallError::Unavailable),
        "\\PC{0,20}".prop_map(CallError::Forbidden),
        "\\PC{0,20}".prop_map(CallError::Invalid),
        ("\\PC{0,12}", "\\PC{0,20}").prop_map(|(code, message)| CallError::App { code, message }),
    ];
    fuzz("rpc errors", 4_000, error, |error| {
        // Host -> WIT -> host is lossless.
        prop_assert_eq!(CallError::from(Error::from(error.clone())), error.clone());
        // What a plugin answers its client: the callee's own refusal as written, any other
        // error without its internal text.
        let sdk = match Error::from(error.clone()) {
            Error::App(AppError { code, message }) => micro_api_sdk::error::app(code, message),
            Error::Timeout => micro_api_sdk::Error::Timeout,
            Error::CircuitOpen => micro_api_sdk::Error::CircuitOpen,
            Error::Rejected => micro_api_sdk::Error::Rejected,
            Error::Unavailable(m) => micro_api_sdk::error::unavailable(m),
            Error::Forbidden(m) => micro_api_sdk::error::forbidden(m),
            Error::Invalid(m) => micro_api_sdk::error::invalid(m),
        };
        let answer = micro_api_sdk::http::Response::from(HttpError::from(sdk));
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        match &error {
            CallError::App { message: m, .. } => prop_assert_eq!(message, m.as_str()),
            CallError::Unavailable(m) | CallError::Forbidden(m) | CallError::Invalid(m)
                if m.len() > 3 =>
            {
                prop_assert!(!message.contains(m.as_str()), "{message} leaks {m}")
            }
            _ => {}
        }
        Ok(())
    });
    let payload = glued(
        &[
            "{",
            "}",
            "\"name\"",
            "\"pwd\"",
            ":",
            ",",
            "\"micro\"",
            "null",
            "1e999",
            "[",
            "]",
            "\\u0000",
            "\"",
        ],
        16,
    );
    fuzz("rpc payloads", 4_000, payload, |payload| {
        // A service decodes any payload to its request or to `invalid`, never panics.
        let decoded = micro_api_sdk::service::json(&payload, |r: GetUserByName| Ok(r.name));
        if let Err(e) = decoded {
            prop_assert!(matches!(e, micro_api_sdk::Error::Invalid(_)), "{e:?}");
        }
        let _ = micro_api_sdk::service::decode::<CheckPassword>(&payload);
        Ok(())
    });
}

// --- HTTP ------------------------------------------------------------------------------

/// Random malformed HTTP against a running host: the public, admin and rpc listeners get
/// bad methods and versions, invalid UTF-8, huge and broken headers, wrong lengths, broken
/// chunks and cut bodies. The host must never crash and must keep serving good requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_never_takes_the_host_down() {
    use rand::{Rng, SeedableRng};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cases: u64 = std::env::var("MICRO_API_FUZZ_HTTP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let seed: u64 = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6d69_6372_6f2d_6170);
    let mut host = common::HostBuilder::seed()
        .plugins(&["probe-http"])
        .admin_token("fuzz-admin-token-0123456789")
        .config(common::PROBES)
        .config(
            r#"
[[route]]
path = "/user/profile"
methods = ["GET"]
plugin = "user-api"
auth = "required"

[server]
rpc = "127.0.0.1:0"

[cluster]
secret = "fuzz-cluster-secret-0123456789"

[front]
header_read_timeout_ms = 1000
request_timeout_ms = 1000
idle_timeout_ms = 500

[login_limit]
max_failures_per_address = 1000000
"#,
        )
        .start();
    let targets: Vec<String> = [&host.http, &host.admin, &host.rpc]
        .iter()
        .map(|url| url.trim_start_matches("http://").to_string())
        .filter(|addr| !addr.is_empty())
        .collect();
    assert_eq!(targets.len(), 3, "the rpc listener is up");

    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let requests: Vec<(usize, Vec<u8>, bool)> = (0..cases)
        .map(|_| {
            let target = if rng.random_bool(0.7) {
                0
            } else {
                rng.random_range(1..3)
            };
            (target, malformed_request(&mut rng), rng.random_bool(0.8))
        })
        .collect();
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let mut batch = tokio::task::JoinSet::new();
    for (i, (target, request, half_close)) in requests.into_iter().enumerate() {
        let addr = targets[target].clone();
        let statuses = statuses.clone();
        batch.spawn(async move {
            let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await else {
                return;
            };
            let _ = stream.write_all(&request).await;
            if half_close {
                let _ = stream.shutdown().await;
            }
            let mut answer = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
            let text = String::from_utf8_lossy(&answer);
            let mut status = text.get(..12).unwrap_or(&text).to_string();
            // A server error says which: a plugin's trap on hostile input is a crash too.
            if status.starts_with("HTTP/1.1 5") {
                let code = text
                    .split("\"code\":\"")
                    .nth(1)
                    .and_then(|c| c.split('"').next());
                status = format!("{status} {}", code.unwrap_or("?"));
            }
            *statuses.lock().unwrap().entry(status).or_insert(0u64) += 1;
        });
        // At most 32 connections at once; between batches, the host must still serve.
        if batch.len() >= 32 || i as u64 + 1 == cases {
            while batch.join_next().await.is_some() {}
            assert!(
                host.is_running(),
                "the host died on the batch ending at case {i}"
            );
        }
        if i % 200 == 199 {
            let hello = common::client()
                .get(host.url("/probe/hello"))
                .send()
                .await
                .unwrap();
            assert_eq!(hello.status(), 200, "after case {i}");
        }
    }
    assert!(host.is_running());
    let statuses = statuses.lock().unwrap().clone();
    assert!(
        statuses.keys().all(|s| !s.contains("plugin_trap")),
        "a plugin trapped: {statuses:?}"
    );
    let (status, body) = common::login(&host, "userName=micro&pwd=123").await;
    assert_eq!(status, 200, "a good login after the fuzzing: {body}");
    eprintln!("fuzz target malformed http: {cases} inputs, 0 crashes; answers: {statuses:?}");
}

/// One malformed (or, now and then, well-formed) HTTP/1.x request.
fn malformed_request(rng: &mut impl rand::Rng) -> Vec<u8> {
    fn pick<T: Copy>(rng: &mut impl rand::Rng, items: &[T]) -> T {
        items[rng.random_range(0..items.len())]
    }
    fn junk(rng: &mut impl rand::Rng, max: usize) -> Vec<u8> {
        let len = rng.random_range(0..=max);
        (0..len).map(|_| rng.random()).collect()
    }
    let mut out = Vec::new();
    let eol: &[u8] = pick(
        rng,
        &[&b"\r\n"[..], b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n"],
    );
    // Request line.
    match rng.random_range(0..10) {
        0 => out.extend(junk(rng, 16)),
        1 => out.extend("GET".repeat(rng.random_range(1..3000)).as_bytes()),
        _ => out.extend_from_slice(pick(
            rng,
            &[
                &b"GET"[..],
                b"POST",
                b"PUT",
                b"DELETE",
                b"PATCH",
                b"HEAD",
                b"OPTIONS",
                b"TRACE",
                b"CONNECT",
                b"PRI",
                b"get",
                b"G\x00T",
                b"\xff\xfe",
                b"BREW",
            ],
        )),
    }
    out.push(b' ');
    match rng.random_range(0..12) {
        0 => out.extend(junk(rng, 64)),
        1 => out.extend(format!("/{}", "a/".repeat(rng.random_range(1..20_000))).as_bytes()),
        2 => out.extend_from_slice(b"*"),
        3 => out.extend_from_slice(b"http://x/user/login?userName=micro"),
        4 => {
            out.extend_from_slice(b"/probe/\xc3\x28\xff%ff%00");
        }
        _ => out.extend_from_slice(pick(
            rng,
            &[
                &b"/user/login"[..],
                b"/user/profile",
                b"/probe/echo",
                b"/probe/echo-headers",
                b"/probe/hello",
                b"/probe/call/probe/echo",
                b"/admin/plugins",
                b"/admin/plugins/reload",
                b"/admin/health/live",
                b"/rpc/user/GetUserByName",
                b"/rpc/auth/VerifyAccessToken",
                b"/rpc/user",
                b"/../etc/passwd",
                b"/user/login/",
                b"//user//login",
                b"/user/%6cogin",
                b"",
            ],
        )),
    }
    if !rng.random_bool(0.05) {
        out.push(b' ');
        out.extend_from_slice(pick(
            rng,
            &[
                &b"HTTP/1.1"[..],
                b"HTTP/1.1",
                b"HTTP/1.0",
                b"HTTP/2.0",
                b"HTTP/9.9",
                b"http/1.1",
                b"HTTP/1.1 extra",
                b"",
            ],
        ));
    }
    out.extend_from_slice(eol);
    // Headers.
    let body = match rng.random_range(0..5) {
        0 => b"userName=micro&pwd=123".to_vec(),
        1 => format!(
            "userName={}&pwd={}",
            rng.random::<u16>(),
            rng.random::<u32>()
        )
        .into_bytes(),
        2 => br#"{"name":"micro","pwd":"123","token":"x"}"#.to_vec(),
        3 => junk(rng, 300),
        _ => Vec::new(),
    };
    let chunked = rng.random_bool(0.2);
    for _ in 0..rng.random_range(0..8) {
        let header: Vec<u8> = match rng.random_range(0..22) {
            0 => format!("x-big: {}", "a".repeat(rng.random_range(1_000..70_000))).into_bytes(),
            1 => [b"x-junk: ".to_vec(), junk(rng, 40)].concat(),
            2 => [junk(rng, 12), b": v".to_vec()].concat(),
            3 => b"no colon here".to_vec(),
            4 => b" folded: continuation".to_vec(),
            5 => b"content-length: -1".to_vec(),
            6 => b"content-length: 99999999999999999999".to_vec(),
            7 => b"content-length: abc".to_vec(),
            8 => b"content-length: 5, 6".to_vec(),
            9 => format!("content-length: {}", body.len() + rng.random_range(1..100)).into_bytes(),
            10 => format!(
                "content-length: {}",
                body.len().saturating_sub(rng.random_range(1..10))
            )
            .into_bytes(),
            11 => b"transfer-encoding: chunked".to_vec(),
            12 => b"transfer-encoding: gzip, chunked, identity".to_vec(),
            13 => b"content-type: application/x-www-form-urlencoded".to_vec(),
            14 => b"content-type: application/json".to_vec(),
            15 => b"authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.".to_vec(),
            16 => b"authorization: Bearer fuzz-admin-token-0123456789".to_vec(),
            17 => b"authorization: Bearer fuzz-cluster-secret-0123456789".to_vec(),
            18 => [b"x-micro-api-claims: ".to_vec(), junk(rng, 30)].concat(),
            19 => b"expect: 100-continue".to_vec(),
            20 => b"upgrade: h2c".to_vec(),
            _ => b"host: a b".to_vec(),
        };
        out.extend(header);
        out.extend_from_slice(eol);
    }
    // Mostly with a Host, so most requests get past the front to a plugin.
    if rng.random_bool(0.85) {
        out.extend_from_slice(b"host: x");
        out.extend_from_slice(eol);
    }
    if !chunked && rng.random_bool(0.6) {
        out.extend(format!("content-length: {}", body.len()).as_bytes());
        out.extend_from_slice(eol);
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !rng.random_bool(0.05) {
        out.extend_from_slice(eol);
    }
    // Body: whole, cut, chunked (well or badly).
    if chunked {
        match rng.random_range(0..4) {
            0 => out.extend(format!("{:x}\r\n", body.len()).as_bytes()),
            1 => out.extend_from_slice(b"zz\r\n"),
            2 => out.extend_from_slice(b"fffffffffffffffffff\r\n"),
            _ => out.extend(format!("{:x};ext=1\r\n", body.len() + 7).as_bytes()),
        }
        out.extend(&body);
        if rng.random_bool(0.5) {
            out.extend_from_slice(b"\r\n0\r\n\r\n");
        }
    } else {
        let keep = if rng.random_bool(0.3) {
            rng.random_range(0..=body.len())
        } else {
            body.len()
        };
        out.extend(&body[..keep]);
    }
    // Now and then a second request pipelined behind the first.
    if rng.random_bool(0.1) {
        out.extend_from_slice(b"GET /probe/hello HTTP/1.1\r\nhost: x\r\n\r\n");
    }
    out
}

#[test]
fn the_generators_make_what_they_claim() {
    // The literal generator's pieces are what the rewriter must leave alone.
    let mut runner = TestRunner::deterministic();
    let tree = sql_token().new_tree(&mut runner).unwrap();
    let _ = tree.current();
    let value = pattern_and_paths().new_tree(&mut runner).unwrap().current();
    assert!(PathPattern::parse(&value.0).is_ok(), "{value:?}");
}
