//! Log lines in the host's log, under the plugin's name and the trace of the request or
//! message being handled: [`info`], [`warn`]... for a message, [`info_with`],
//! [`warn_with`]... for a message with fields; [`log`] is the host import itself.
//!
//! ```no_run
//! use micro_api_sdk::log;
//!
//! log::info("cache warmed");
//! let name = "mallory";
//! log::warn_with("failed login", &[("user", &name), ("attempts", &3)]);
//! ```
//!
//! Field values are formatted with `Display`. Never log a secret (a password, a token):
//! log lines leave the host.

use std::fmt::Display;

pub use crate::host::log::*;

/// One function per level, and its `_with` twin taking fields.
macro_rules! levels {
    ($($level:ident: $plain:ident, $with:ident, $example:literal;)*) => {$(
        #[doc = concat!("Logs `message` at `", stringify!($level), "` level.")]
        ///
        /// ```no_run
        #[doc = concat!("micro_api_sdk::log::", stringify!($plain), "(\"", $example, "\");")]
        /// ```
        pub fn $plain(message: &str) {
            log(Level::$level, message, &[]);
        }

        #[doc = concat!("Logs `message` at `", stringify!($level), "` level, with fields.")]
        ///
        /// ```no_run
        /// let user = "micro";
        #[doc = concat!(
            "micro_api_sdk::log::", stringify!($with), "(\"", $example, "\", &[(\"user\", &user)]);"
        )]
        /// ```
        pub fn $with(message: &str, fields: &[(&str, &dyn Display)]) {
            log(Level::$level, message, &owned(fields));
        }
    )*};
}

levels! {
    Debug: debug, debug_with, "request read";
    Info: info, info_with, "login seen";
    Warn: warn, warn_with, "failed login";
    Error: error, error_with, "cannot reach the user service";
}

/// The fields as the host import takes them.
fn owned(fields: &[(&str, &dyn Display)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_formatted_with_display() {
        let name = String::from("micro");
        assert_eq!(
            owned(&[("user", &name), ("attempts", &3), ("ok", &false)]),
            [("user", "micro"), ("attempts", "3"), ("ok", "false")]
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .to_vec()
        );
    }
}
