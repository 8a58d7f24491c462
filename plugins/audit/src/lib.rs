//! The `audit` subscriber: writes every `user.login` event to the `audit_log` table.
//!
//! Events arrive at most once; `event_id` is unique in the table, so a repeated event (a
//! replay by hand, a future at-least-once broker) is refused by the database rather than
//! written twice.

use micro_api_sdk::broker::Subscriber;
use micro_api_sdk::contracts::events::LoginEvent;
use micro_api_sdk::{Error, error, service, sql};

/// Longest user name kept: the name is what the client typed, of any length.
const MAX_USER_NAME: usize = 64;

struct Audit;

impl Subscriber for Audit {
    fn on_message(topic: String, payload: Vec<u8>) -> Result<(), Error> {
        match topic.as_str() {
            LoginEvent::TOPIC => record_login(service::decode(&payload)?),
            other => Err(error::invalid(format!("audit does not handle `{other}`"))),
        }
    }
}

micro_api_sdk::export_subscriber!(Audit);

fn record_login(event: LoginEvent) -> Result<(), Error> {
    let user_name: String = event.user_name.chars().take(MAX_USER_NAME).collect();
    let user_id = match event.user_id {
        Some(id) => sql::Value::Integer(
            i64::try_from(id).map_err(|_| error::invalid("user_id out of range"))?,
        ),
        None => sql::Value::Null,
    };
    sql::execute(
        "INSERT INTO `audit_log` (`event_id`, `user_name`, `user_id`, `success`, `at_ms`, `remote_addr`) VALUES (?, ?, ?, ?, ?, ?)",
        &[
            event.event_id.into(),
            user_name.into(),
            user_id,
            sql::Value::Integer(i64::from(event.success)),
            sql::Value::Integer(
                i64::try_from(event.at_ms).map_err(|_| error::invalid("at_ms out of range"))?,
            ),
            event.remote_addr.into(),
        ],
    )?;
    Ok(())
}
