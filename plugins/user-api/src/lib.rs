//! The user HTTP API: `POST /user/login` exchanges a user name and password for an
//! access token.

use micro_api_sdk::http::{Handler, HttpError, Request, Response};
use micro_api_sdk::services::Call as _;
use micro_api_sdk::services::auth::{AccessToken, MakeAccessToken};
use micro_api_sdk::services::user::{CheckPassword, User};
use serde::Serialize;

struct UserApi;

impl Handler for UserApi {
    fn handle(request: Request) -> Result<Response, HttpError> {
        match request.path() {
            "/user/login" => login(&request),
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
    let form = request.form()?;
    let user = CheckPassword {
        name: form.required("userName")?.to_owned(),
        pwd: form.required("pwd")?.to_owned(),
    }
    .call()?;
    let token = MakeAccessToken {
        user_id: user.id,
        user_name: user.name.clone(),
    }
    .call()?;
    Ok(Response::json(200, &Login { token, user }))
}
