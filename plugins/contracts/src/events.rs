//! The events the seed plugins publish on the broker, shared by publisher and subscribers.

use serde::{Deserialize, Serialize};

/// One login attempt, successful or not, published by `user-api` on [`LoginEvent::TOPIC`]
/// (never with the password). The `audit` table keeps these fields under these names.
///
/// ```
/// use micro_api_contracts::events::LoginEvent;
///
/// let json = r#"{"event_id":"00ff","user_name":"micro","user_id":10001,
///               "success":true,"at_ms":1700000000000,"remote_addr":"127.0.0.1"}"#;
/// let event: LoginEvent = serde_json::from_str(json).unwrap();
/// assert!(event.success);
/// assert_eq!(LoginEvent::TOPIC, "user.login");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginEvent {
    /// Unique per attempt (16 hex digits), so a consumer can tell a repeat from a new one.
    pub event_id: String,
    /// The name the client typed, of any length.
    pub user_name: String,
    /// Set when the password matched.
    pub user_id: Option<u64>,
    pub success: bool,
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// The client's address, as the host saw it (empty when it did not say).
    pub remote_addr: String,
}

impl LoginEvent {
    /// The topic it is published on.
    pub const TOPIC: &'static str = "user.login";
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit table's columns and the subscribers read these exact names.
    #[test]
    fn the_login_event_keeps_its_json_shape() {
        let failed = LoginEvent {
            event_id: "0123456789abcdef".into(),
            user_name: "mallory".into(),
            user_id: None,
            success: false,
            at_ms: 1_700_000_000_123,
            remote_addr: "::1".into(),
        };
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "event_id": "0123456789abcdef",
                "user_name": "mallory",
                "user_id": null,
                "success": false,
                "at_ms": 1_700_000_000_123u64,
                "remote_addr": "::1",
            })
        );
        assert_eq!(serde_json::from_value::<LoginEvent>(json).unwrap(), failed);
        // An event without `user_id` (an older publisher) is a failed one, not an error.
        let old = r#"{"event_id":"1","user_name":"a","success":false,"at_ms":0,"remote_addr":""}"#;
        assert_eq!(
            serde_json::from_str::<LoginEvent>(old).unwrap().user_id,
            None
        );
    }
}
