//! The user HTTP API: `POST /user/login` exchanges a user name and password for an
//! access token, and `GET /user/profile` tells who the bearer of an access token is.

use micro_api_sdk::http::{Handler, HttpError, Request, Response};
use micro_api_sdk::services::Call as _;
use micro_api_sdk::services::auth::{AccessToken, MakeAccessToken, VerifyAccessToken};
use micro_api_sdk::services::user::{CheckPassword, GetUserByName, User};
use micro_api_sdk::{Error, trace};
use serde::{Deserialize, Serialize};

struct UserApi;

impl Handler for UserApi {
    fn handle(request: Request) -> Result<Response, HttpError> {
        match request.path() {
            "/user/login" => login(&request),
            "/user/profile" => profile(&request),
            _ => Err(HttpError::not_found("no such route")),
        }
    }
}

micro_api_sdk::export_http!(UserApi);

#[derive(Serialize)]
struct Login {
    #[serde(flatten)]
    token: AccessToken,
    user: User,
}

fn login(request: &Request) -> Result<Response, HttpError> {
    request.require_method("POST")?;
    // A span of the plugin's own, under its invocation in the request's trace (an early
    // return leaves it open: the host closes it with the instance).
    let reading = trace::enter_span("read login form");
    let form = request.form()?;
    let check = CheckPassword {
        name: form.required("userName")?.to_owned(),
        pwd: form.required("pwd")?.to_owned(),
    };
    trace::exit_span(reading);
    let user = check.call()?;
    let token = MakeAccessToken {
        user_id: user.id,
        user_name: user.name.clone(),
    }
    .call()?;
    Ok(Response::json(200, &Login { token, user }))
}

/// The user an `Authorization: Bearer <token>` header names: `auth` checks the token, `user`
/// reads the user it was issued to.
fn profile(request: &Request) -> Result<Response, HttpError> {
    request.require_method("GET")?;
    // Routed with `auth = "required"` (as config.toml does), the host has already verified
    // the token and hands over its claims; routed openly, `auth` checks it.
    let name = match request.claims::<TokenClaims>() {
        Some(claims) => claims.name,
        None => {
            let token = bearer_token(request).ok_or_else(unauthorized)?;
            VerifyAccessToken {
                token: token.to_owned(),
            }
            .call()
            .map_err(refused_as_unauthorized)?
            .user_name
        }
    };
    let user = GetUserByName { name }
        .call()
        .map_err(refused_as_unauthorized)?;
    Ok(Response::json(200, &user))
}

/// What the profile needs of the claims `auth` puts in an access token.
#[derive(Deserialize)]
struct TokenClaims {
    name: String,
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer_token(request: &Request) -> Option<&str> {
    let (scheme, token) = request.header("authorization")?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// 401 with the challenge RFC 6750 asks for.
fn unauthorized() -> HttpError {
    HttpError::new(401, "unauthorized", "a valid access token is required")
        .with_header("www-authenticate", "Bearer")
}

/// A callee's refusal (a bad or expired token, or a token whose user is gone) is the client's
/// 401; the gateway's own failures (timeouts, open breakers) keep their status.
fn refused_as_unauthorized(error: Error) -> HttpError {
    match error {
        Error::App(_) => unauthorized(),
        other => other.into(),
    }
}
