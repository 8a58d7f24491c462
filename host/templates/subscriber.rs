//! A subscriber plugin for micro-api, scaffolded by `micro-api new --kind subscriber`.
//!
//! The broker hands it the messages of the topics its `[plugin.<name>]` section lists in
//! `subscribe`: here `user.login`, which the seed's `user-api` publishes on every login
//! attempt. Delivery is at most once and the publisher never waits for it, so a message is
//! a notification, not the only record of something. Every message runs in a fresh
//! instance: nothing is kept between messages (keep counts in `sql`, granted by
//! `sql = true`).
//!
//! `micro-api build` deploys it; then each `POST /user/login` logs a `login seen` line.

use micro_api_sdk::broker::Subscriber;
// The messages of the seed's topics are typed in the SDK's `contracts`.
use micro_api_sdk::contracts::events::LoginEvent;
use micro_api_sdk::{Error, error, log, service};

struct Plugin;

impl Subscriber for Plugin {
    fn on_message(topic: String, payload: Vec<u8>) -> Result<(), Error> {
        match topic.as_str() {
            // `service::decode` reads the JSON payload (bad JSON is `invalid`).
            LoginEvent::TOPIC => on_login(service::decode(&payload)?),
            // Only the topics of `subscribe` arrive: another one is a config change this
            // code does not know yet, so say so (the host counts it as failed) and go on.
            other => Err(error::invalid(format!("no handler for topic `{other}`"))),
        }
    }
}

micro_api_sdk::export_subscriber!(Plugin);

fn on_login(event: LoginEvent) -> Result<(), Error> {
    // The host writes it with the plugin's name and the message's trace.
    log::info_with(
        "login seen",
        &[("user", &event.user_name), ("success", &event.success)],
    );
    Ok(())
}
