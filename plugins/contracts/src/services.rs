//! The requests and answers of the seed services, shared by the services and their callers.
//!
//! Each request type implements [`Rpc`], which ties it to its service, method and answer;
//! its names are also plain constants of the type, so a service matches
//! `user::CheckPassword::METHOD` without importing a trait. The SDK's
//! `services::Call::call` sends any [`Rpc`] through the host's `rpc` and decodes its answer.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// A request to one method of a service, answered by `Self::Answer`; both travel as JSON.
///
/// ```
/// use micro_api_contracts::services::{Rpc, user::GetUserByName};
///
/// fn route<R: Rpc>() -> String {
///     format!("{}.{}", R::SERVICE, R::METHOD)
/// }
/// assert_eq!(route::<GetUserByName>(), "user.GetUserByName");
/// ```
pub trait Rpc: Serialize + DeserializeOwned {
    /// The service's name, as registered.
    const SERVICE: &'static str;
    /// The method's name.
    const METHOD: &'static str;
    /// What the method answers.
    type Answer: Serialize + DeserializeOwned;
}

/// Declares that `$request` is the request of `$service.$method`, answered by `$answer`:
/// the names as constants of the type and as its [`Rpc`] implementation.
macro_rules! rpcs {
    ($($request:ident => $service:literal . $method:literal -> $answer:ty;)*) => {
        $(
            impl $request {
                /// The service's name, as registered.
                pub const SERVICE: &'static str = $service;
                /// The method's name.
                pub const METHOD: &'static str = $method;
            }

            impl Rpc for $request {
                const SERVICE: &'static str = $service;
                const METHOD: &'static str = $method;
                type Answer = $answer;
            }
        )*
    };
}

/// The `user` service: the user table.
pub mod user {
    use super::*;

    /// A user as services and clients see it (never with its password hash).
    ///
    /// ```
    /// # use micro_api_contracts::services::user::User;
    /// let user: User = serde_json::from_str(r#"{"id":10001,"name":"micro"}"#).unwrap();
    /// assert_eq!(user, User { id: 10001, name: "micro".into() });
    /// ```
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct User {
        /// The seed's `user_id` column (10001 for `micro`), not the primary key.
        pub id: u64,
        pub name: String,
    }

    /// The user named `name`, or `app(not_found)`.
    ///
    /// ```
    /// # use micro_api_contracts::services::user::GetUserByName;
    /// assert_eq!(GetUserByName::METHOD, "GetUserByName");
    /// ```
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct GetUserByName {
        pub name: String,
    }

    /// The user named `name` if `pwd` is its password, or `app(unauthorized)` (for an
    /// unknown name too).
    ///
    /// ```
    /// # use micro_api_contracts::services::user::CheckPassword;
    /// assert_eq!((CheckPassword::SERVICE, CheckPassword::METHOD), ("user", "CheckPassword"));
    /// ```
    // No `Debug`: it holds a password, which must not end up in a log.
    #[derive(Clone, Serialize, Deserialize)]
    pub struct CheckPassword {
        pub name: String,
        pub pwd: String,
    }

    rpcs! {
        GetUserByName => "user"."GetUserByName" -> User;
        CheckPassword => "user"."CheckPassword" -> User;
    }
}

/// The `auth` service: access tokens.
pub mod auth {
    use super::*;

    /// A new access token for a user.
    ///
    /// ```
    /// # use micro_api_contracts::services::auth::MakeAccessToken;
    /// assert_eq!(MakeAccessToken::SERVICE, "auth");
    /// ```
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct MakeAccessToken {
        pub user_id: u64,
        pub user_name: String,
    }

    /// A signed access token, valid for `expires_in` seconds.
    ///
    /// ```
    /// # use micro_api_contracts::services::auth::AccessToken;
    /// let answer = AccessToken { token: "eyJ...".into(), expires_in: 3600 };
    /// assert_eq!(serde_json::to_value(&answer).unwrap()["expires_in"], 3600);
    /// ```
    // No `Debug`: the token is a credential.
    #[derive(Clone, Serialize, Deserialize)]
    pub struct AccessToken {
        pub token: String,
        pub expires_in: u32,
    }

    /// The claims of `token`, or `app(unauthorized)` when it is invalid or expired.
    ///
    /// ```
    /// # use micro_api_contracts::services::auth::VerifyAccessToken;
    /// assert_eq!(VerifyAccessToken::METHOD, "VerifyAccessToken");
    /// ```
    // No `Debug`: the token is a credential.
    #[derive(Clone, Serialize, Deserialize)]
    pub struct VerifyAccessToken {
        pub token: String,
    }

    /// Who an access token was issued to, and until when (seconds since the epoch): the
    /// answer of [`VerifyAccessToken`].
    ///
    /// ```
    /// # use micro_api_contracts::services::auth::Claims;
    /// let claims = Claims { user_id: 10001, user_name: "micro".into(), exp: 1 };
    /// assert_eq!(serde_json::to_value(&claims).unwrap()["user_name"], "micro");
    /// ```
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Claims {
        pub user_id: u64,
        pub user_name: String,
        pub exp: u64,
    }

    /// What `auth` signs into an access token; the host adds `iss`, `aud`, `iat` and `exp`
    /// when it signs, and hands these back to a protected route's plugin in
    /// [`CLAIMS_HEADER`](crate::headers::CLAIMS_HEADER).
    ///
    /// ```
    /// # use micro_api_contracts::services::auth::TokenClaims;
    /// let signed = r#"{"sub":"10001","uid":10001,"name":"micro","iss":"micro-api","exp":9}"#;
    /// let claims: TokenClaims = serde_json::from_str(signed).unwrap();
    /// assert_eq!((claims.uid, claims.name.as_str()), (10001, "micro"));
    /// ```
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TokenClaims {
        /// The user id as a string, as JWT's `sub` is.
        pub sub: String,
        /// The user id.
        pub uid: u64,
        /// The user name.
        pub name: String,
    }

    rpcs! {
        MakeAccessToken => "auth"."MakeAccessToken" -> AccessToken;
        VerifyAccessToken => "auth"."VerifyAccessToken" -> Claims;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire names are the seed's: renaming a field breaks every caller of another
    /// version.
    #[test]
    fn requests_and_answers_keep_their_json_names() {
        assert_eq!(
            json(&user::CheckPassword {
                name: "micro".into(),
                pwd: "123".into()
            }),
            r#"{"name":"micro","pwd":"123"}"#
        );
        assert_eq!(
            json(&auth::MakeAccessToken {
                user_id: 1,
                user_name: "micro".into()
            }),
            r#"{"user_id":1,"user_name":"micro"}"#
        );
        assert_eq!(
            json(&auth::TokenClaims {
                sub: "1".into(),
                uid: 1,
                name: "micro".into()
            }),
            r#"{"sub":"1","uid":1,"name":"micro"}"#
        );
        assert_eq!(
            (
                auth::VerifyAccessToken::SERVICE,
                user::GetUserByName::SERVICE
            ),
            ("auth", "user")
        );
    }

    fn json<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap()
    }
}
