//! The `user` service: looks users up and checks their passwords.

use micro_api_sdk::services::user::{CheckPassword, GetUserByName, User};
use micro_api_sdk::{Error, crypto, error, service, sql};

/// An argon2id hash (m=19456, t=2, p=1) of a random string, checked against when the user
/// does not exist so that an unknown name takes as long as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$R4/Zv+lG+W2REbnGo2fLXQ$7uf5/9ryCbgW5ntAv2I9+1V64IQuQv6/wWI/m8KmkTs";

struct UserService;

impl service::Guest for UserService {
    fn handle(method: String, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
        match method.as_str() {
            GetUserByName::METHOD => service::json(&payload, get_user_by_name),
            CheckPassword::METHOD => service::json(&payload, check_password),
            other => Err(service::unknown_method(other)),
        }
    }
}

micro_api_sdk::export_service!(UserService);

fn get_user_by_name(request: GetUserByName) -> Result<User, Error> {
    let rows = sql::query(
        "SELECT `user_id`, `user_name` FROM `user` WHERE `user_name` = ?",
        &[request.name.into()],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| error::app("not_found", "user not found"))?;
    user(row)
}

fn check_password(request: CheckPassword) -> Result<User, Error> {
    let rows = sql::query(
        "SELECT `user_id`, `user_name`, `pwd` FROM `user` WHERE `user_name` = ?",
        &[request.name.into()],
    )?;
    let found = match rows.first() {
        Some(row) => Some((user(row)?, row.get::<String>("pwd")?)),
        None => None,
    };
    let hash = found.as_ref().map_or(DUMMY_HASH, |(_, hash)| hash);
    let matches = crypto::verify_password(&request.pwd, hash)?;
    match found {
        Some((user, _)) if matches => Ok(user),
        // The same answer for both: it must not tell which names exist.
        _ => Err(error::app("unauthorized", "invalid user name or password")),
    }
}

fn user(row: sql::Row<'_>) -> Result<User, Error> {
    Ok(User {
        id: row.get("user_id")?,
        name: row.get("user_name")?,
    })
}
