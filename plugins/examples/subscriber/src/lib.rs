//! Example: a subscriber that turns failed logins into warnings. The seed's `user-api`
//! publishes a `user.login` event on every login attempt; this plugin is handed each one
//! and logs `failed login` (with the user name and the client's address) for those whose
//! password did not match, a line an alerting rule on the host's logs can watch. Successful
//! logins are read and let go.
//!
//! Its config (as `host/tests/examples.rs` loads it):
//!
//! ```toml
//! [plugin.example-subscriber]
//! subscribe = ["user.login"]
//! ```
//!
//! The broker delivers at most once and never makes the publisher wait: a lost event is a
//! missed warning, never a slower or failed login.

use micro_api_sdk::broker::Subscriber;
use micro_api_sdk::contracts::events::LoginEvent;
use micro_api_sdk::{Error, error, log, service};

struct FailedLogins;

impl Subscriber for FailedLogins {
    fn on_message(topic: String, payload: Vec<u8>) -> Result<(), Error> {
        match topic.as_str() {
            LoginEvent::TOPIC => {
                let event: LoginEvent = service::decode(&payload)?;
                if !event.success {
                    warn_failed(event);
                }
                Ok(())
            }
            // Only the topics of `subscribe` arrive; an error is counted as `failed` in
            // `/admin/broker`, which is where a config naming a topic this code does not
            // handle shows.
            other => Err(error::invalid(format!(
                "example-subscriber does not handle `{other}`"
            ))),
        }
    }
}

micro_api_sdk::export_subscriber!(FailedLogins);

/// Longest user name written to the logs: the name is whatever the client typed.
const MAX_USER_NAME: usize = 64;

fn warn_failed(event: LoginEvent) {
    let user: String = event.user_name.chars().take(MAX_USER_NAME).collect();
    log::warn_with(
        "failed login",
        &[("user", &user), ("remote_addr", &event.remote_addr)],
    );
}
