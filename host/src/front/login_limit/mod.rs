//! Brute-force protection of the login route, held by the host so it survives plugin
//! reloads and holds whatever the login plugin does.
//!
//! The host counts the route's answers: a 401 is a failed login, of the user name in the
//! form field `[login_limit] user_field`. Three counts, each in a sliding window of
//! `window_secs`, and past any of them the route answers 429 `too_many_requests` with
//! `Retry-After` before the plugin runs:
//! - `max_failures` per user name *at one client address* (an IPv4 address, an IPv6 /64):
//!   a guesser is stopped, while the owner, from an address that has not failed, still
//!   gets in (nobody can lock an account out from their own address, nor by making a
//!   visitor's browser send the guesses);
//! - `max_failures_per_user` per user name from every address together: a slower, global
//!   rate, which is what stops a guesser spread over many addresses;
//! - `max_failures_per_address` per address, whatever the names: one client trying many.
//!
//! Password checks other nodes ask for on the rpc listener ([`LoginLimiter::begin_remote`])
//! count in the same per-name table, and only there.
//!
//! Attempts in progress hold their place in the per-name-at-address and per-address counts
//! until they are answered, so parallel guesses cannot run past a limit before their
//! failures come back; an attempt whose client goes away before its answer counts as a
//! failure (its password check may have run to its end). A success clears its name's
//! failures, never its address's. The user name is read exactly as the plugin reads it, or
//! the request is refused: a `Content-Type` that is not ASCII is a 415, a name longer than
//! `max_user_chars` or with leading or trailing white space is a 400 (on MariaDB's PAD SPACE
//! collations `micro ` would be another key for the same account). Everything is in memory
//! and bounded by `max_entries` per table.

mod table;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use micro_api_contracts::form;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use table::Table;

/// `[login_limit]`: brute-force protection of the login route, counted by the host from
/// the route's answers (401 is a failure), so it holds across plugin reloads.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginLimitConfig {
    /// The login route's path; empty turns the limit off.
    pub path: String,
    /// The form field holding the user name.
    pub user_field: String,
    /// Failed logins of one user name from one client address within the window; more: 429.
    pub max_failures: u32,
    /// Failed logins of one user name from all addresses within the window; more: 429.
    pub max_failures_per_user: u32,
    /// Failed logins from one client address (an IPv6 /64) within the window; more: 429.
    pub max_failures_per_address: u32,
    pub window_secs: u64,
    /// The longest user name, in characters (the seed column is `varchar(20)`); longer: 400.
    pub max_user_chars: usize,
    /// Keys tracked at once per table; past it, the oldest are forgotten.
    pub max_entries: usize,
}

impl Default for LoginLimitConfig {
    fn default() -> Self {
        Self {
            path: "/user/login".into(),
            user_field: "userName".into(),
            max_failures: 5,
            max_failures_per_user: 100,
            max_failures_per_address: 20,
            window_secs: 300,
            max_user_chars: 20,
            max_entries: 100_000,
        }
    }
}

impl LoginLimitConfig {
    /// Every problem of the section, each with its fix (none when it is off).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.path.is_empty() {
            return problems;
        }
        if !self.path.starts_with('/') {
            problems.push("[login_limit] path starts with / (or is empty: off)".into());
        }
        if self.user_field.is_empty() {
            problems.push("[login_limit] user_field must name the form field".into());
        }
        if self.max_failures == 0
            || self.max_failures_per_user == 0
            || self.max_failures_per_address == 0
        {
            problems.push(
                "[login_limit] max_failures, max_failures_per_user and max_failures_per_address must be at least 1".into(),
            );
        }
        if self.window_secs == 0 {
            problems.push("[login_limit] window_secs must be at least 1".into());
        }
        if self.max_user_chars == 0 {
            problems.push("[login_limit] max_user_chars must be at least 1".into());
        }
        if self.max_entries == 0 {
            problems.push("[login_limit] max_entries must be at least 1".into());
        }
        problems
    }
}

/// How the login route answered an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 401: a failed login, counted.
    Failed,
    /// 2xx: a login, which clears its name's failures.
    Succeeded,
    /// Anything else (a bad request, a timeout...): neither; the count stays as it was.
    Other,
}

impl Outcome {
    pub fn of(status: http::StatusCode) -> Self {
        if status == http::StatusCode::UNAUTHORIZED {
            Outcome::Failed
        } else if status.is_success() {
            Outcome::Succeeded
        } else {
            Outcome::Other
        }
    }
}

/// Over the limit: come back after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed logins; retry after {} s", retry_after.as_secs())]
pub struct Throttled {
    pub retry_after: Duration,
}

/// A login the host cannot read as the plugin would, refused before it is counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    /// 415: a `Content-Type` header that is not visible ASCII.
    #[error("the Content-Type header must be ASCII")]
    ContentType,
    /// 400: a user name past `max_user_chars`.
    #[error("the user name is longer than {0} characters")]
    TooLong(usize),
    /// 400: a user name with white space at either end.
    #[error("the user name must not start or end with white space")]
    Padded,
}

/// The user name and address a login attempt is counted against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub user: Option<String>,
    pub address: Option<AddressKey>,
}

/// A client address as counted: an IPv4 address, or the /64 of an IPv6 one (what one
/// client usually holds whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(prefix.into()))
                }
            },
        }
    }
}

/// A user name at one address: the key of the per-name count.
type NameAt = (String, Option<AddressKey>);

/// Which counts an attempt holds a place in while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// A login at the front: its name at its address, and its address.
    NameAtAddress,
    /// A check another node asks for: its name from every address.
    Name,
}

pub struct LoginLimiter {
    path: String,
    user_field: String,
    max_user_chars: usize,
    window: Duration,
    names_at: Mutex<Table<NameAt>>,
    names: Mutex<Table<String>>,
    addresses: Mutex<Table<AddressKey>>,
}

impl LoginLimiter {
    /// `None` when `[login_limit] path` is empty (the limit is off).
    pub fn new(config: &LoginLimitConfig) -> Option<Self> {
        if config.path.is_empty() {
            return None;
        }
        Some(Self {
            path: config.path.clone(),
            user_field: config.user_field.clone(),
            max_user_chars: config.max_user_chars,
            window: Duration::from_secs(config.window_secs),
            names_at: Mutex::new(Table::new(config.max_failures, config.max_entries)),
            names: Mutex::new(Table::new(config.max_failures_per_user, config.max_entries)),
            addresses: Mutex::new(Table::new(
                config.max_failures_per_address,
                config.max_entries,
            )),
        })
    }

    /// Whether `path` (without its query) is the login route.
    pub fn applies_to(&self, path: &str) -> bool {
        path == self.path
    }

    /// The user name of a login form: `user_field` as the plugin reads it, through the same
    /// [`micro_api_contracts::form`] calls as the SDK's `Request::form` and
    /// `Form::required` (the two must agree, or a doubled field would count one name and
    /// check another). `None` for a body that is no urlencoded form, or without the field;
    /// an error for what the host cannot read the way the plugin would.
    pub fn user_name(
        &self,
        content_type: Option<&[u8]>,
        body: &[u8],
    ) -> Result<Option<String>, Unreadable> {
        let content_type = match content_type {
            None => return Ok(None),
            Some(bytes) if bytes.iter().all(|b| b.is_ascii() && !b.is_ascii_control()) => {
                std::str::from_utf8(bytes).map_err(|_| Unreadable::ContentType)?
            }
            Some(_) => return Err(Unreadable::ContentType),
        };
        if !form::is_form(content_type) {
            return Ok(None);
        }
        let form = form::Form::parse(body);
        let Ok(name) = form.required(&self.user_field) else {
            return Ok(None);
        };
        self.countable(name)?;
        Ok(Some(name.to_owned()))
    }

    /// Refuses a user name that could be another key for a counted one: past
    /// `max_user_chars`, or with white space at either end.
    pub fn countable(&self, name: &str) -> Result<(), Unreadable> {
        if name.chars().count() > self.max_user_chars {
            return Err(Unreadable::TooLong(self.max_user_chars));
        }
        if name.trim() != name {
            return Err(Unreadable::Padded);
        }
        Ok(())
    }

    /// Lets a login attempt through, or says how long to wait.
    pub fn begin(&self, subject: Subject) -> Result<Attempt<'_>, Throttled> {
        self.begin_at(subject, Instant::now())
    }

    /// Lets a password check that another node asks for through, or says how long to wait.
    /// It is counted against its name from every address (`max_failures_per_user`) only:
    /// the caller's address is a node's, which every login passing through that node
    /// shares, so counting per (name, node) or per node would let anyone lock everybody
    /// out. Checks in progress hold their place in the name's count, so parallel guesses
    /// cannot run past it.
    pub fn begin_remote(&self, user: String) -> Result<Attempt<'_>, Throttled> {
        let subject = Subject {
            user: Some(user),
            address: None,
        };
        self.admit(subject, Scope::Name, Instant::now())
    }

    fn begin_at(&self, subject: Subject, now: Instant) -> Result<Attempt<'_>, Throttled> {
        self.admit(subject, Scope::NameAtAddress, now)
    }

    fn admit(
        &self,
        subject: Subject,
        scope: Scope,
        now: Instant,
    ) -> Result<Attempt<'_>, Throttled> {
        let name_at = match scope {
            Scope::NameAtAddress => subject.user.clone().map(|user| (user, subject.address)),
            Scope::Name => None,
        };
        let mut names_at = self.names_at.lock();
        let mut names = self.names.lock();
        let mut addresses = self.addresses.lock();
        let wait = [
            name_at
                .as_ref()
                .and_then(|key| names_at.wait(key, now, self.window)),
            subject
                .user
                .as_ref()
                .and_then(|user| names.wait(user, now, self.window)),
            subject
                .address
                .as_ref()
                .and_then(|address| addresses.wait(address, now, self.window)),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(retry_after) = wait {
            return Err(Throttled { retry_after });
        }
        if let Some(key) = &name_at {
            names_at.hold(key, now, self.window);
        }
        if let Some(address) = &subject.address {
            addresses.hold(address, now, self.window);
        }
        if let (Scope::Name, Some(user)) = (scope, &subject.user) {
            names.hold(user, now, self.window);
        }
        Ok(Attempt {
            limiter: self,
            subject,
            name_at,
            scope,
            done: false,
        })
    }

    /// Counts an answered attempt: a failure against its name (at its address and
    /// overall) and its address; a success clears its name's failures (never its
    /// address's: a client must not be able to wipe its count by logging into an account
    /// of its own). Any other answer changes nothing, or a request the plugin refuses
    /// before checking the password (a missing field) would wipe the count.
    fn end(&self, attempt: &Attempt<'_>, outcome: Outcome, now: Instant) {
        let mut names_at = self.names_at.lock();
        let mut names = self.names.lock();
        let mut addresses = self.addresses.lock();
        if let Some(key) = &attempt.name_at {
            names_at.release(key);
        }
        if let Some(address) = &attempt.subject.address {
            addresses.release(address);
        }
        if let (Scope::Name, Some(user)) = (attempt.scope, &attempt.subject.user) {
            names.release(user);
        }
        match outcome {
            Outcome::Failed => {
                if let Some(key) = &attempt.name_at {
                    names_at.fail(key, now, self.window);
                }
                if let Some(user) = &attempt.subject.user {
                    names.fail(user, now, self.window);
                }
                if let Some(address) = &attempt.subject.address {
                    addresses.fail(address, now, self.window);
                }
            }
            Outcome::Succeeded => {
                if let Some(key) = &attempt.name_at {
                    names_at.clear(key);
                }
                if let Some(user) = &attempt.subject.user {
                    names.clear(user);
                }
            }
            Outcome::Other => {}
        }
    }

    /// Keys tracked now: names at an address, names, addresses.
    pub fn tracked(&self) -> (usize, usize, usize) {
        let names_at = self.names_at.lock().len();
        let names = self.names.lock().len();
        let addresses = self.addresses.lock().len();
        (names_at, names, addresses)
    }
}

/// A login attempt let through: [`finish`](Attempt::finish) it with the route's answer.
/// Dropped unfinished (the client went away before its answer), it counts as a failure:
/// the password check may have run to its end, and a guesser must not get it uncounted.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    subject: Subject,
    name_at: Option<NameAt>,
    scope: Scope,
    done: bool,
}

impl Attempt<'_> {
    /// Counts the route's answer.
    pub fn finish(self, outcome: Outcome) {
        self.finish_at(outcome, Instant::now());
    }

    fn finish_at(mut self, outcome: Outcome, now: Instant) {
        self.done = true;
        self.limiter.end(&self, outcome, now);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.limiter.end(self, Outcome::Failed, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests;
