//! The user HTTP API: `POST /user/login` exchanges a user name and password for an
//! access token, and `GET /user/profile` tells who the bearer of an access token is.
//!
//! Every login attempt, successful or not, is published as a `user.login` event (never the
//! password) for the audit trail; publishing never delays or fails the login.

use micro_api_sdk::contracts::events::LoginEvent;
use micro_api_sdk::http::{Handler, HttpError, Request, Response};
use micro_api_sdk::services::Call as _;
use micro_api_sdk::services::auth::{AccessToken, MakeAccessToken, TokenClaims, VerifyAccessToken};
use micro_api_sdk::services::user::{CheckPassword, GetUserByName, User};
use micro_api_sdk::{Error, broker, log, trace};
use serde::Serialize;

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
    let name = form.required("userName")?;
    let checked = CheckPassword {
        name: name.to_owned(),
        pwd: form.required("pwd")?.to_owned(),
    };
    trace::exit_span(reading);
    let checked = checked.call();
    publish_login(request, name, &checked);
    let user = checked?;
    let token = MakeAccessToken {
        user_id: user.id,
        user_name: user.name.clone(),
    }
    .call()?;
    Ok(Response::json(200, &Login { token, user }))
}

/// Publishes the attempt's event. Only the host's queue being full can fail it; the login
/// goes on either way, so the failure is only logged.
fn publish_login(request: &Request, user_name: &str, checked: &Result<User, Error>) {
    let now = micro_api_sdk::wasip2::clocks::wall_clock::now();
    let event = LoginEvent {
        event_id: format!(
            "{:016x}",
            micro_api_sdk::wasip2::random::random::get_random_u64()
        ),
        user_name: user_name.to_owned(),
        user_id: checked.as_ref().ok().map(|u| u.id),
        success: checked.is_ok(),
        at_ms: now.seconds * 1000 + u64::from(now.nanoseconds / 1_000_000),
        remote_addr: request
            .client_addr()
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
    };
    if let Err(e) = broker::publish(LoginEvent::TOPIC, &event) {
        log::warn_with("login event not published", &[("error", &format!("{e:?}"))]);
    }
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
            let token = request.bearer_token().ok_or_else(unauthorized)?;
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
