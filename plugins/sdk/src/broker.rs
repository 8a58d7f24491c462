//! Publish/subscribe: [`publish`] a JSON event on a topic, and receive a topic's events in a
//! component of the `subscriber` world ([`Subscriber`], exported with
//! [`export_subscriber!`](crate::export_subscriber)).
//!
//! Delivery is at most once, and publishing never waits for a subscriber: treat an event
//! as a notification, not as the only record of something.
//!
//! ```no_run
//! use micro_api_sdk::contracts::events::LoginEvent;
//! use micro_api_sdk::{Error, broker, service};
//!
//! // publisher, granted `publish = ["user.login"]`
//! # fn publish(event: LoginEvent) -> Result<(), Error> {
//! broker::publish(LoginEvent::TOPIC, &event)?;
//! # Ok(()) }
//!
//! // subscriber, granted `subscribe = ["user.login"]`
//! struct Audit;
//!
//! impl broker::Subscriber for Audit {
//!     fn on_message(topic: String, payload: Vec<u8>) -> Result<(), Error> {
//!         let event: LoginEvent = service::decode(&payload)?;
//!         Ok(())
//!     }
//! }
//!
//! micro_api_sdk::export_subscriber!(Audit);
//! ```

use serde::Serialize;

pub use crate::__subscriber::exports::micro_api::host::message_handler::Guest as Subscriber;
use crate::error::{self, Error};

/// Publishes `event` as JSON on `topic` (one of `[plugin.<name>] publish`). Returns at
/// once; `unavailable` when the host's queue is full and the event was dropped.
pub fn publish<T: Serialize + ?Sized>(topic: &str, event: &T) -> Result<(), Error> {
    let payload = serde_json::to_vec(event)
        .map_err(|e| error::invalid(format!("cannot encode the event: {e}")))?;
    crate::host::broker::publish(topic, &payload)
}
