//! The `auth` service: signs and verifies access tokens with the host's key.

use micro_api_sdk::services::auth::{
    AccessToken, Claims, MakeAccessToken, TokenClaims, VerifyAccessToken,
};
use micro_api_sdk::{Error, crypto, error, service};
use serde::Deserialize;

/// How long an access token lives, in seconds.
const TOKEN_TTL: u32 = 3600;

struct Auth;

impl service::Guest for Auth {
    fn handle(method: String, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
        match method.as_str() {
            MakeAccessToken::METHOD => service::json(&payload, make_access_token),
            VerifyAccessToken::METHOD => service::json(&payload, verify_access_token),
            other => Err(service::unknown_method(other)),
        }
    }
}

micro_api_sdk::export_service!(Auth);

fn make_access_token(request: MakeAccessToken) -> Result<AccessToken, Error> {
    let claims = TokenClaims {
        sub: request.user_id.to_string(),
        uid: request.user_id,
        name: request.user_name,
    };
    let claims = serde_json::to_string(&claims)
        .map_err(|e| error::unavailable(format!("cannot encode the claims: {e}")))?;
    Ok(AccessToken {
        token: crypto::sign_token(&claims, TOKEN_TTL)?,
        expires_in: TOKEN_TTL,
    })
}

/// The claims [`make_access_token`] puts in a token, plus the `exp` the host adds.
#[derive(Deserialize)]
struct Signed {
    #[serde(flatten)]
    claims: TokenClaims,
    exp: u64,
}

fn verify_access_token(request: VerifyAccessToken) -> Result<Claims, Error> {
    let invalid_token = || error::app("unauthorized", "invalid or expired token");
    // `app` is a bad signature, issuer, audience or expiry, `invalid` a malformed token:
    // both are the client's bad token, told apart from the host's own failures.
    let claims = crypto::verify_token(&request.token).map_err(|e| match e {
        Error::App(_) | Error::Invalid(_) => invalid_token(),
        other => other,
    })?;
    // A token this host signed for something else (without our claims) is no access token.
    let signed: Signed = serde_json::from_str(&claims).map_err(|_| invalid_token())?;
    Ok(Claims {
        user_id: signed.claims.uid,
        user_name: signed.claims.name,
        exp: signed.exp,
    })
}
