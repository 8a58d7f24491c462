//! Requests and answers of the seed services, shared by their callers and themselves.
//!
//! Each request type implements [`Call`], which ties it to its service, method and answer:
//! a caller writes `user::CheckPassword { .. }.call()?`, the service matches
//! `user::CheckPassword::METHOD` in its [`Guest::handle`](crate::service::Guest::handle).

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{Error, rpc};

/// A request to a method of a service, answered by `Self::Answer`.
///
/// ```no_run
/// # fn f() -> Result<(), micro_api_sdk::Error> {
/// use micro_api_sdk::services::{Call as _, user::GetUserByName};
///
/// let user = GetUserByName { name: "micro".into() }.call()?;
/// assert_eq!(user.id, 10001);
/// # Ok(()) }
/// ```
pub trait Call: Serialize {
    /// The service's name, as registered.
    const SERVICE: &'static str;
    /// The method's name.
    const METHOD: &'static str;
    type Answer: DeserializeOwned;

    /// Sends this request through [`rpc::call_json`].
    fn call(&self) -> Result<Self::Answer, Error> {
        rpc::call_json(Self::SERVICE, Self::METHOD, self)
    }
}

/// Declares that `$request` is the request of `$service.$method`, answered by `$answer`.
macro_rules! calls {
    ($($request:ident => $service:literal . $method:literal -> $answer:ty;)*) => {
        $(impl Call for $request {
            const SERVICE: &'static str = $service;
            const METHOD: &'static str = $method;
            type Answer = $answer;
        })*
    };
}

/// The `user` service: the user table.
pub mod user {
    use super::*;

    /// A user as services and clients see it (never with its password hash).
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct User {
        pub id: u64,
        pub name: String,
    }

    /// The user named `name`, or `app(not_found)`.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct GetUserByName {
        pub name: String,
    }

    /// The user named `name` if `pwd` is its password, or `app(unauthorized)`.
    // No `Debug`: it holds a password, which must not end up in a log.
    #[derive(Clone, Serialize, Deserialize)]
    pub struct CheckPassword {
        pub name: String,
        pub pwd: String,
    }

    calls! {
        GetUserByName => "user"."GetUserByName" -> User;
        CheckPassword => "user"."CheckPassword" -> User;
    }
}

/// The `auth` service: access tokens.
pub mod auth {
    use super::*;

    /// A new access token for a user.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct MakeAccessToken {
        pub user_id: u64,
        pub user_name: String,
    }

    /// A signed access token, valid for `expires_in` seconds.
    // No `Debug`: the token is a credential.
    #[derive(Clone, Serialize, Deserialize)]
    pub struct AccessToken {
        pub token: String,
        pub expires_in: u32,
    }

    /// The claims of `token`, or `app(unauthorized)` when it is invalid or expired.
    // No `Debug`: the token is a credential.
    #[derive(Clone, Serialize, Deserialize)]
    pub struct VerifyAccessToken {
        pub token: String,
    }

    /// Who an access token was issued to, and until when (seconds since the epoch).
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Claims {
        pub user_id: u64,
        pub user_name: String,
        pub exp: u64,
    }

    calls! {
        MakeAccessToken => "auth"."MakeAccessToken" -> AccessToken;
        VerifyAccessToken => "auth"."VerifyAccessToken" -> Claims;
    }
}
