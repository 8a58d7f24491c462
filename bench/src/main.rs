//! `bench-native`: the native baseline of `cargo xtask bench`. It serves the benchmark cases
//! in plain hyper + tokio, doing the work the components do behind micro-api, so the ratio
//! of the two is the price of the wasm path alone:
//!
//! - `GET /hello`, `GET /hello-reused`: 200 `hello` (the `hello` test component, served
//!   by micro-api with a fresh instance per request and with serial reuse);
//! - `GET /hello-p3`: 200 `Hello, WASI!` (the `wasip3` crate's hello, WASI 0.3);
//! - `GET /user/profile`: checks the bearer token and reads its user (`user-api`, which asks
//!   `auth.VerifyAccessToken` and `user.GetUserByName`);
//! - `POST /user/login`: checks the password and signs a token (`user-api`, which asks
//!   `user.CheckPassword` and `auth.MakeAccessToken`).
//!
//! Crypto and SQL are the host library's own ([`Keys`], [`micro_api::sql::connect`]):
//! the same JWT validation, the same argon2id on the same blocking pool, the same sqlx
//! queries through the same pool, on a database migrated from the same files. It prints
//! `{"message":"bench-native listening","http":"ADDR"}` once it accepts connections.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use micro_api::crypto::{AuthConfig, Keys, Purpose};
use micro_api::sql::{Database, Value};
use serde_json::json;

/// As `plugins/auth`: how long an access token lives, in seconds.
const TOKEN_TTL: u32 = 3600;
/// As `plugins/user`: the hash checked when the user does not exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$R4/Zv+lG+W2REbnGo2fLXQ$7uf5/9ryCbgW5ntAv2I9+1V64IQuQv6/wWI/m8KmkTs";
/// As `plugins/user`: the statements, with the host's `?` placeholders and backticks.
const GET_USER_BY_NAME: &str = "SELECT `user_id`, `user_name` FROM `user` WHERE `user_name` = ?";
const CHECK_PASSWORD: &str =
    "SELECT `user_id`, `user_name`, `pwd` FROM `user` WHERE `user_name` = ?";

#[derive(Parser)]
#[command(about = "The native baseline of micro-api's benchmarks")]
struct Args {
    /// Address to serve on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The database, as micro-api's `[database] url` (migrated on start, seed user included).
    #[arg(long)]
    database: String,
    /// The token signing key, the same as the micro-api it is compared with.
    #[arg(long, env = "MICRO_API__AUTH__SIGNING_KEY")]
    signing_key: String,
    /// As `[database] max_connections` (unset: the host's default for the database), read
    /// from the host's own variable so one export sets both servers of a benchmark alike.
    #[arg(long, env = "MICRO_API__DATABASE__MAX_CONNECTIONS")]
    max_connections: Option<u32>,
}

struct Native {
    crypto: Keys,
    database: Box<dyn Database>,
}

type Answer = Response<Full<Bytes>>;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The same runtime as `micro-api serve`: multi-threaded, one worker per available core.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let crypto = Keys::from_config(&AuthConfig {
        signing_key: Some(args.signing_key),
        ..AuthConfig::default()
    })?;
    let database = micro_api::sql::connect(
        &args.database,
        args.max_connections
            .unwrap_or_else(|| micro_api::sql::default_pool_size(&args.database)),
    )
    .await?;
    let native = Arc::new(Native { crypto, database });
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "{}",
        json!({"message": "bench-native listening", "http": listener.local_addr()?.to_string()})
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let native = native.clone();
        let service = hyper::service::service_fn(move |request| {
            let native = native.clone();
            async move { Ok::<_, std::convert::Infallible>(native.handle(request).await) }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Why a request is refused, as the gateway's error shape says it.
enum Refusal {
    NotFound,
    BadRequest(String),
    UnsupportedMediaType,
    /// A missing or bad token (with the `WWW-Authenticate` challenge).
    Unauthorized,
    WrongPassword,
    Unavailable,
}

impl Native {
    async fn handle(&self, request: Request<Incoming>) -> Answer {
        let (parts, body) = request.into_parts();
        // micro-api reads the whole body before it invokes a plugin: so does this.
        let outcome = match body.collect().await.map(|b| b.to_bytes()) {
            Err(_) => Err(Refusal::BadRequest("unreadable body".into())),
            Ok(body) => match (&parts.method, parts.uri.path()) {
                (&Method::GET, "/hello" | "/hello-reused") => Ok(text("hello")),
                (&Method::GET, "/hello-p3") => Ok(text("Hello, WASI!")),
                (&Method::GET, "/user/profile") => self.profile(&parts.headers).await,
                (&Method::POST, "/user/login") => self.login(&parts.headers, &body).await,
                _ => Err(Refusal::NotFound),
            },
        };
        outcome.unwrap_or_else(refused)
    }

    /// `user-api`'s profile: `auth.VerifyAccessToken`, then `user.GetUserByName`.
    async fn profile(&self, headers: &http::HeaderMap) -> Result<Answer, Refusal> {
        let token = bearer_token(headers).ok_or(Refusal::Unauthorized)?;
        let claims = self
            .crypto
            .verify_token(token, &[Purpose::Access])
            .map_err(|_| Refusal::Unauthorized)?;
        // `auth` reads its own claims back: a token without them is no access token.
        let name = claims
            .get("name")
            .and_then(|n| n.as_str())
            .filter(|_| claims.get("uid").is_some_and(|u| u.is_u64()))
            .filter(|_| claims.get("exp").is_some_and(|e| e.is_u64()))
            .ok_or(Refusal::Unauthorized)?;
        let rows = self
            .database
            .query(GET_USER_BY_NAME, &[Value::Text(name.to_owned())])
            .await
            .map_err(|_| Refusal::Unavailable)?;
        let user = rows.rows.first().ok_or(Refusal::Unauthorized)?;
        Ok(json_answer(
            StatusCode::OK,
            &user_json(user).ok_or(Refusal::Unavailable)?,
        ))
    }

    /// `user-api`'s login: `user.CheckPassword`, then `auth.MakeAccessToken`.
    async fn login(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<Answer, Refusal> {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(Refusal::UnsupportedMediaType);
        }
        let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        let field = |name: &str| {
            form.iter()
                .find(|(n, v)| n == name && !v.is_empty())
                .map(|(_, v)| v.clone())
                .ok_or_else(|| Refusal::BadRequest(format!("the field `{name}` is required")))
        };
        let (name, pwd) = (field("userName")?, field("pwd")?);
        let rows = self
            .database
            .query(CHECK_PASSWORD, &[Value::Text(name)])
            .await
            .map_err(|_| Refusal::Unavailable)?;
        let found = rows.rows.first();
        let hash = match found.and_then(|row| row.get(2)) {
            Some(Value::Text(hash)) => hash.clone(),
            _ => DUMMY_HASH.to_owned(),
        };
        let matches = self
            .crypto
            .verify_password(pwd, hash)
            .await
            .map_err(|_| Refusal::Unavailable)?;
        let user = match found {
            Some(row) if matches => user_json(row).ok_or(Refusal::Unavailable)?,
            _ => return Err(Refusal::WrongPassword),
        };
        let claims =
            json!({"sub": user["id"].to_string(), "uid": user["id"], "name": user["name"]});
        let token = self
            .crypto
            .sign_token(&claims.to_string(), TOKEN_TTL, Purpose::Access)
            .map_err(|_| Refusal::Unavailable)?;
        Ok(json_answer(
            StatusCode::OK,
            &json!({"token": token, "expires_in": TOKEN_TTL, "user": user}),
        ))
    }
}

/// `{"id", "name"}` from a row whose first two columns are `user_id` and `user_name`.
fn user_json(row: &[Value]) -> Option<serde_json::Value> {
    match row {
        [Value::Integer(id), Value::Text(name), ..] => Some(json!({"id": id, "name": name})),
        _ => None,
    }
}

/// The token of an `Authorization: Bearer <token>` header, as `user-api` reads it.
fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn text(body: &'static str) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

fn json_answer(status: StatusCode, value: &serde_json::Value) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The gateway's error shape: `{"error": {"code", "message"}}`.
fn refused(refusal: Refusal) -> Answer {
    let challenge = matches!(refusal, Refusal::Unauthorized);
    let (status, code, message) = match refusal {
        Refusal::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such route".into()),
        Refusal::BadRequest(message) => (StatusCode::BAD_REQUEST, "bad_request", message),
        Refusal::UnsupportedMediaType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the content type must be application/x-www-form-urlencoded".into(),
        ),
        Refusal::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid access token is required".into(),
        ),
        Refusal::WrongPassword => (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid user name or password".into(),
        ),
        Refusal::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is unavailable".into(),
        ),
    };
    let mut response = json_answer(
        status,
        &json!({"error": {"code": code, "message": message}}),
    );
    if challenge {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_tokens_as_user_api_does() {
        let headers = |value: &str| {
            let mut map = http::HeaderMap::new();
            map.insert(header::AUTHORIZATION, value.parse().unwrap());
            map
        };
        assert_eq!(bearer_token(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&http::HeaderMap::new()), None);
    }

    #[test]
    fn answers_users_as_the_user_service_does() {
        let row = [Value::Integer(10001), Value::Text("micro".into())];
        assert_eq!(
            user_json(&row).unwrap().to_string(),
            r#"{"id":10001,"name":"micro"}"#
        );
        assert!(user_json(&[Value::Null]).is_none());
    }
}
