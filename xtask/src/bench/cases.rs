//! The cases: the requests every server is measured on, the wrk script of each, and the
//! checks, before any load, that every server answers them alike (over plain HTTP/1.0).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::json_field;
use super::servers::{
    CROSS_HOST, MICRO_API, MICRO_API_ACCESS_LOG, NATIVE, Servers, WASMTIME, WASMTIME_P3,
    WASMTIME_REUSED,
};

/// The login's content type.
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
/// The rpc hop's content type.
const JSON: (&str, &str) = ("Content-Type", "application/json");
/// The seed user's credentials (`host/migrations/`).
const LOGIN_FORM: &str = "userName=micro&pwd=123";
/// The answer `/user/profile` must give for the seed user, on every server.
const PROFILE: &str = r#"{"id":10001,"name":"micro"}"#;

impl Servers {
    /// Checks that every server of `case` (one without a token) answers it 200 `expected`.
    pub(super) fn check_answers(&self, case: &Case, expected: &str) -> Result<()> {
        for name in &case.servers {
            let server = self.get(name);
            let headers: Vec<_> = case.content_type.into_iter().collect();
            let (status, body) = http(&server.addr, case.method, case.path, &headers, case.body)?;
            if (status, body.as_str()) != (200, expected) {
                bail!(
                    "{}: {} {} answered {status} {body:?}\n{}",
                    server.name,
                    case.method,
                    case.path,
                    server.last_output()
                );
            }
        }
        Ok(())
    }

    /// Checks that micro-api and native log the seed user in and read tokens alike, and
    /// returns a token (from micro-api's login: both servers share the signing key).
    pub(super) fn check_logins(&self) -> Result<String> {
        let mut token = String::new();
        for name in [MICRO_API, NATIVE] {
            let addr = &self.get(name).addr;
            let (status, body) = http(addr, "POST", "/user/login", &[FORM], LOGIN_FORM)?;
            if status != 200 || !body.contains(r#""user":{"id":10001,"name":"micro"}"#) {
                bail!("{name}: POST /user/login answered {status} {body}");
            }
            if name == MICRO_API {
                token = json_field(&body, "token").context("no token in the login answer")?;
            }
        }
        for name in [MICRO_API, NATIVE] {
            let addr = &self.get(name).addr;
            let bearer = format!("Bearer {token}");
            let (status, body) = http(
                addr,
                "GET",
                "/user/profile",
                &[("Authorization", &bearer)],
                "",
            )?;
            if (status, body.as_str()) != (200, PROFILE) {
                bail!("{name}: GET /user/profile answered {status} {body}");
            }
            let nope = [("Authorization", "Bearer nope")];
            let (status, _) = http(addr, "GET", "/user/profile", &nope, "")?;
            if status != 401 {
                bail!("{name}: GET /user/profile with a bad token answered {status}, not 401");
            }
        }
        Ok(token)
    }

    /// The cases, lightest first: a login leaves its 19 MiB argon2 buffer in the server's
    /// memory, which would show in the peak RSS of any case measured after it.
    pub(super) fn cases(&self) -> Vec<Case> {
        let with_peer = |peer| {
            if self.has(peer) {
                vec![MICRO_API, NATIVE, peer]
            } else {
                vec![MICRO_API, NATIVE]
            }
        };
        let mut cases = vec![
            Case {
                name: "hello",
                method: "GET",
                path: "/hello",
                authorized: false,
                content_type: None,
                body: "",
                expected: Some("hello"),
                servers: with_peer(WASMTIME),
                baseline: NATIVE,
                instances_of: None,
            },
            Case {
                name: "hello, 0.2 reused",
                method: "GET",
                path: "/hello-reused",
                authorized: false,
                content_type: None,
                body: "",
                expected: Some("hello"),
                servers: with_peer(WASMTIME_REUSED),
                baseline: NATIVE,
                instances_of: Some("hello-reused"),
            },
            Case {
                name: "hello, 0.3",
                method: "GET",
                path: "/hello-p3",
                authorized: false,
                content_type: None,
                body: "",
                expected: Some("Hello, WASI!"),
                servers: with_peer(WASMTIME_P3),
                baseline: NATIVE,
                instances_of: Some("wasip3-hello"),
            },
            // The access log's cost: the same hello with it on, against micro-api with it off.
            Case {
                name: "hello, access log",
                method: "GET",
                path: "/hello",
                authorized: false,
                content_type: None,
                body: "",
                expected: Some("hello"),
                servers: vec![MICRO_API_ACCESS_LOG, MICRO_API],
                baseline: MICRO_API,
                instances_of: None,
            },
            Case {
                name: "token check",
                method: "GET",
                path: "/user/profile",
                authorized: true,
                content_type: None,
                body: "",
                expected: None,
                servers: vec![MICRO_API, NATIVE],
                baseline: NATIVE,
                instances_of: None,
            },
        ];
        if self.has(CROSS_HOST) {
            cases.push(Case {
                name: "rpc hop",
                method: "POST",
                path: "/probe/call/probe/echo",
                authorized: false,
                content_type: Some(JSON),
                body: "{}",
                expected: Some("{}"),
                servers: vec![MICRO_API, CROSS_HOST],
                baseline: MICRO_API,
                instances_of: None,
            });
        }
        cases.push(Case {
            name: "login",
            method: "POST",
            path: "/user/login",
            authorized: false,
            content_type: Some(FORM),
            body: LOGIN_FORM,
            expected: None,
            servers: vec![MICRO_API, NATIVE],
            baseline: NATIVE,
            instances_of: None,
        });
        cases
    }
}

/// One HTTP/1.0 exchange (so the answer is delimited by the close): status and body.
pub(super) fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{method} {path}: not an HTTP answer: {answer:?}"))?;
    Ok((status, body.to_string()))
}

/// A benchmark case: one request, sent to each of `servers`.
pub(super) struct Case {
    pub(super) name: &'static str,
    pub(super) method: &'static str,
    pub(super) path: &'static str,
    /// Sent with `Authorization: Bearer <token>`.
    pub(super) authorized: bool,
    pub(super) content_type: Option<(&'static str, &'static str)>,
    pub(super) body: &'static str,
    /// The answer every server must give before the load starts, when it is fixed.
    pub(super) expected: Option<&'static str>,
    pub(super) servers: Vec<&'static str>,
    /// The server the others' throughput is divided by.
    pub(super) baseline: &'static str,
    /// The micro-api plugin whose reused instances alive are sampled during the load.
    pub(super) instances_of: Option<&'static str>,
}

impl Case {
    /// The wrk script: the request, and a `done` hook that prints the exact numbers.
    pub(super) fn script(&self, token: Option<&str>) -> String {
        let mut lua = format!(
            "-- Generated by `cargo xtask bench` for the case {:?}.\nwrk.method = {:?}\nwrk.body = {:?}\n",
            self.name, self.method, self.body
        );
        if let Some((name, value)) = self.content_type {
            lua.push_str(&format!("wrk.headers[{name:?}] = {value:?}\n"));
        }
        if let Some(token) = token.filter(|_| self.authorized) {
            lua.push_str(&format!(
                "wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"
            ));
        }
        lua.push_str(
            r#"done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
"#,
        );
        lua
    }
}
