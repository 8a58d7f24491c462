//! Brute-force protection of the login route, held by the host so it survives plugin
//! reloads and holds whatever the login plugin does.
//!
//! The host counts the route's answers: a 401 is a failed login, of the user name in the
//! form field `[login_limit] user_field` and of the client's address. Past
//! `max_failures` for the name or `max_failures_per_address` for the address within
//! `window_secs` (a sliding window), the route answers 429 `too_many_requests` with
//! `Retry-After` before the plugin runs. A success never counts, and clears its own name's
//! failures; others' failures never count against a name, so another user's login is never
//! slowed by them (the address limit, higher, is what stops one client trying many names).
//!
//! Once a name has failed within the window, each of its attempts in progress holds a
//! place in its count until it is answered, so parallel guesses cannot run past the limit
//! before their failures come back. A name with no failure is never slowed, however many
//! logins it has in flight (a busy client, a benchmark); the cost is that the first burst
//! against a clean name is bounded only by `[front] max_connections` and the address limit
//! once its answers come back. Everything is in memory and bounded by `max_entries` per
//! table: entries with nothing left in the window go first, then the least recently used.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use micro_api_contracts::form;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// `[login_limit]`: brute-force protection of the login route, counted by the host from
/// the route's answers (401 is a failure), so it holds across plugin reloads.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginLimitConfig {
    /// The login route's path; empty turns the limit off.
    pub path: String,
    /// The form field holding the user name.
    pub user_field: String,
    /// Failed logins of one user name within the window; more: 429.
    pub max_failures: u32,
    /// Failed logins from one client address (an IPv6 /64) within the window; more: 429.
    pub max_failures_per_address: u32,
    pub window_secs: u64,
    /// User names and addresses tracked at once; past it, the oldest are forgotten.
    pub max_entries: usize,
}

impl Default for LoginLimitConfig {
    fn default() -> Self {
        Self {
            path: "/user/login".into(),
            user_field: "userName".into(),
            max_failures: 5,
            max_failures_per_address: 20,
            window_secs: 300,
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
        if self.max_failures == 0 || self.max_failures_per_address == 0 {
            problems.push(
                "[login_limit] max_failures and max_failures_per_address must be at least 1".into(),
            );
        }
        if self.window_secs == 0 {
            problems.push("[login_limit] window_secs must be at least 1".into());
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

pub struct LoginLimiter {
    path: String,
    user_field: String,
    window: Duration,
    users: Mutex<Table<String>>,
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
            window: Duration::from_secs(config.window_secs),
            users: Mutex::new(Table::new(config.max_failures, config.max_entries)),
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
    /// check another). `None` for a body that is no urlencoded form, or without the field.
    pub fn user_name(&self, content_type: Option<&str>, body: &[u8]) -> Option<String> {
        if !content_type.is_some_and(form::is_form) {
            return None;
        }
        let name = form::Form::parse(body)
            .required(&self.user_field)
            .ok()?
            .to_owned();
        Some(name)
    }

    /// Lets a login attempt through, or says how long to wait.
    pub fn begin(&self, subject: Subject) -> Result<Attempt<'_>, Throttled> {
        self.begin_at(subject, Instant::now())
    }

    fn begin_at(&self, subject: Subject, now: Instant) -> Result<Attempt<'_>, Throttled> {
        let mut users = self.users.lock();
        let mut addresses = self.addresses.lock();
        let wait = [
            subject
                .user
                .as_ref()
                .and_then(|u| users.wait(u, now, self.window, true)),
            subject
                .address
                .as_ref()
                .and_then(|a| addresses.wait(a, now, self.window, false)),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(retry_after) = wait {
            return Err(Throttled { retry_after });
        }
        if let Some(user) = &subject.user {
            users.entry(user, now, self.window).pending += 1;
        }
        Ok(Attempt {
            limiter: self,
            subject,
            done: false,
        })
    }

    /// Counts an answered attempt: a failure against its name and address, a success
    /// clears its name's failures (never its address's: a client must not be able to wipe
    /// its count by logging into an account of its own). Any other answer changes nothing,
    /// or a request the plugin refuses before checking the password (a missing field)
    /// would wipe the count.
    fn end(&self, subject: &Subject, outcome: Outcome, now: Instant) {
        if let Some(user) = &subject.user {
            let mut users = self.users.lock();
            users.release(user);
            match outcome {
                Outcome::Failed => users.fail(user, now, self.window),
                Outcome::Succeeded => users.clear(user),
                Outcome::Other => {}
            }
        }
        if outcome == Outcome::Failed
            && let Some(address) = &subject.address
        {
            let mut addresses = self.addresses.lock();
            addresses.fail(address, now, self.window);
        }
    }

    /// User names and addresses tracked now.
    pub fn tracked(&self) -> (usize, usize) {
        let users = self.users.lock().entries.len();
        let addresses = self.addresses.lock().entries.len();
        (users, addresses)
    }
}

/// A login attempt let through: [`finish`](Attempt::finish) it with the route's answer.
/// Dropped unfinished (the client went away), it counts as nothing.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    subject: Subject,
    done: bool,
}

impl Attempt<'_> {
    /// Counts the route's answer.
    pub fn finish(mut self, outcome: Outcome) {
        self.done = true;
        self.limiter.end(&self.subject, outcome, Instant::now());
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Some(user) = &self.subject.user
        {
            let mut users = self.limiter.users.lock();
            users.release(user);
        }
    }
}

/// The failures of one user name or address.
#[derive(Debug, Default)]
struct Entry {
    /// Times of the failures within the window, oldest first (at most `max` kept).
    failures: VecDeque<Instant>,
    /// Attempts let through and not answered yet.
    pending: u32,
    last_used: Option<Instant>,
}

/// One table of counts (user names, or addresses), bounded.
struct Table<K> {
    entries: HashMap<K, Entry>,
    max: u32,
    max_entries: usize,
}

impl<K: Clone + Eq + Hash> Table<K> {
    fn new(max: u32, max_entries: usize) -> Self {
        Self {
            entries: HashMap::new(),
            max,
            max_entries,
        }
    }

    /// How long `key` must wait, if it is over its limit; `with_pending` counts the
    /// attempts in progress too, once the key has failed within the window.
    fn wait(
        &mut self,
        key: &K,
        now: Instant,
        window: Duration,
        with_pending: bool,
    ) -> Option<Duration> {
        let entry = self.entries.get_mut(key)?;
        expire(entry, now, window);
        let pending = if with_pending && !entry.failures.is_empty() {
            entry.pending
        } else {
            0
        };
        let used = entry.failures.len() as u32 + pending;
        if used < self.max {
            return None;
        }
        // The oldest failure leaving the window frees a place; attempts in progress alone
        // answer within a request's time.
        let wait = entry
            .failures
            .front()
            .map_or(Duration::from_secs(1), |oldest| {
                (*oldest + window).saturating_duration_since(now)
            });
        Some(wait.max(Duration::from_secs(1)))
    }

    fn entry(&mut self, key: &K, now: Instant, window: Duration) -> &mut Entry {
        if !self.entries.contains_key(key) && self.entries.len() >= self.max_entries {
            self.evict(now, window);
        }
        let entry = self.entries.entry(key.clone()).or_default();
        entry.last_used = Some(now);
        entry
    }

    /// Records a failure; only the last `max` are kept, which is all `wait` needs.
    fn fail(&mut self, key: &K, now: Instant, window: Duration) {
        let max = self.max as usize;
        let entry = self.entry(key, now, window);
        entry.failures.push_back(now);
        while entry.failures.len() > max {
            entry.failures.pop_front();
        }
    }

    /// Forgets the failures of `key`.
    fn clear(&mut self, key: &K) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.failures.clear();
        }
        self.forget_if_empty(key);
    }

    /// Ends an attempt in progress.
    fn release(&mut self, key: &K) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.pending = entry.pending.saturating_sub(1);
        }
        self.forget_if_empty(key);
    }

    fn forget_if_empty(&mut self, key: &K) {
        if self
            .entries
            .get(key)
            .is_some_and(|e| e.failures.is_empty() && e.pending == 0)
        {
            self.entries.remove(key);
        }
    }

    /// Makes room: forgets the entries with nothing left in the window, then, if that is
    /// not enough, the least recently used eighth of the idle ones. Entries with attempts
    /// in progress stay.
    fn evict(&mut self, now: Instant, window: Duration) {
        self.entries.retain(|_, entry| {
            expire(entry, now, window);
            !entry.failures.is_empty() || entry.pending > 0
        });
        if self.entries.len() < self.max_entries {
            return;
        }
        let mut idle: Vec<(Option<Instant>, K)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.pending == 0)
            .map(|(k, e)| (e.last_used, k.clone()))
            .collect();
        let count = (self.max_entries / 8).max(1).min(idle.len());
        if count == 0 {
            return;
        }
        idle.select_nth_unstable_by_key(count - 1, |(last, _)| *last);
        for (_, key) in idle.into_iter().take(count) {
            self.entries.remove(&key);
        }
    }
}

/// Drops the failures that have left the window.
fn expire(entry: &mut Entry, now: Instant, window: Duration) {
    while entry
        .failures
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        entry.failures.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max: u32, per_address: u32, max_entries: usize) -> LoginLimiter {
        LoginLimiter::new(&LoginLimitConfig {
            max_failures: max,
            max_failures_per_address: per_address,
            window_secs: 60,
            max_entries,
            ..LoginLimitConfig::default()
        })
        .unwrap()
    }

    fn subject(user: &str, ip: &str) -> Subject {
        Subject {
            user: Some(user.into()),
            address: Some(ip.parse::<IpAddr>().unwrap().into()),
        }
    }

    fn fail(l: &LoginLimiter, s: &Subject, now: Instant) {
        l.begin_at(s.clone(), now)
            .unwrap()
            .finish_at(Outcome::Failed, now);
    }

    impl Attempt<'_> {
        fn finish_at(mut self, outcome: Outcome, now: Instant) {
            self.done = true;
            self.limiter.end(&self.subject, outcome, now);
        }
    }

    #[test]
    fn a_name_is_throttled_after_its_failures_and_freed_by_the_window() {
        let l = limiter(3, 100, 100);
        let t0 = Instant::now();
        let micro = subject("micro", "10.0.0.1");
        for i in 0..3 {
            fail(&l, &micro, t0 + Duration::from_secs(i));
        }
        let refused = l.begin_at(micro.clone(), t0 + Duration::from_secs(10));
        let Err(Throttled { retry_after }) = refused else {
            panic!("the fourth attempt is refused");
        };
        assert_eq!(
            retry_after,
            Duration::from_secs(50),
            "the oldest leaves at 60 s"
        );
        // Another name from the same address is not slowed.
        let alice = subject("alice", "10.0.0.1");
        l.begin_at(alice, t0 + Duration::from_secs(10))
            .unwrap()
            .finish_at(Outcome::Succeeded, t0);
        // Once the oldest failure has left the window, one more try is allowed.
        assert!(
            l.begin_at(micro.clone(), t0 + Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn only_a_success_clears_a_name() {
        let l = limiter(2, 100, 100);
        let t0 = Instant::now();
        let micro = subject("micro", "10.0.0.1");
        fail(&l, &micro, t0);
        // A missing password (400), a timeout (504): the failure stays.
        for status in [400, 415, 500, 503, 504] {
            let outcome = Outcome::of(http::StatusCode::from_u16(status).unwrap());
            assert_eq!(outcome, Outcome::Other);
            l.begin_at(micro.clone(), t0)
                .unwrap()
                .finish_at(outcome, t0);
        }
        fail(&l, &micro, t0);
        assert!(l.begin_at(micro, t0).is_err());
        assert_eq!(Outcome::of(http::StatusCode::OK), Outcome::Succeeded);
        assert_eq!(Outcome::of(http::StatusCode::UNAUTHORIZED), Outcome::Failed);
    }

    #[test]
    fn a_success_clears_its_name_but_not_its_address() {
        let l = limiter(2, 3, 100);
        let t0 = Instant::now();
        let micro = subject("micro", "10.0.0.1");
        fail(&l, &micro, t0);
        l.begin_at(micro.clone(), t0)
            .unwrap()
            .finish_at(Outcome::Succeeded, t0);
        fail(&l, &micro, t0);
        assert!(l.begin_at(micro.clone(), t0).is_ok(), "one failure since");
        // The address keeps its three failures: a fourth name from it is throttled.
        fail(&l, &subject("bob", "10.0.0.1"), t0);
        assert!(l.begin_at(subject("carol", "10.0.0.1"), t0).is_err());
        assert!(l.begin_at(subject("carol", "10.0.0.2"), t0).is_ok());
    }

    #[test]
    fn attempts_in_progress_hold_their_place_once_a_name_has_failed() {
        let l = limiter(3, 100, 100);
        let micro = subject("micro", "10.0.0.1");
        // A clean name is never slowed by its own logins in flight.
        let clean: Vec<_> = (0..10).map(|_| l.begin(micro.clone()).unwrap()).collect();
        drop(clean);
        fail(&l, &micro, Instant::now());
        let a = l.begin(micro.clone()).unwrap();
        let b = l.begin(micro.clone()).unwrap();
        assert!(
            l.begin(micro.clone()).is_err(),
            "one failure and two guesses in flight"
        );
        drop(a);
        b.finish(Outcome::Succeeded);
        // The success cleared the name; the address keeps its failure.
        assert_eq!(l.tracked(), (0, 1));
        let c = l.begin(micro).unwrap();
        assert_eq!(l.tracked(), (1, 1), "the attempt in progress is tracked");
        drop(c);
        assert_eq!(l.tracked(), (0, 1));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a: AddressKey = "2001:db8::1".parse::<IpAddr>().unwrap().into();
        let b: AddressKey = "2001:db8::ffff:1".parse::<IpAddr>().unwrap().into();
        let c: AddressKey = "2001:db8:0:1::1".parse::<IpAddr>().unwrap().into();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let v4: AddressKey = "::ffff:10.0.0.1".parse::<IpAddr>().unwrap().into();
        assert_eq!(v4, "10.0.0.1".parse::<IpAddr>().unwrap().into());
    }

    #[test]
    fn tables_stay_bounded() {
        let l = limiter(5, 1_000_000, 64);
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            let s = subject(
                &format!("user{i}"),
                &format!("10.{}.{}.1", i / 256 % 256, i % 256),
            );
            fail(&l, &s, t0 + Duration::from_millis(u64::from(i)));
        }
        let (users, addresses) = l.tracked();
        assert!(users <= 64 && addresses <= 64, "{users} {addresses}");
        // The most recent names are the ones kept.
        assert!(l.users.lock().entries.contains_key("user9999"));
    }

    #[test]
    fn the_user_name_is_the_first_field_of_a_form() {
        let l = limiter(5, 5, 5);
        let form = Some("application/x-www-form-urlencoded; charset=utf-8");
        assert_eq!(
            l.user_name(form, b"pwd=1&userName=mi%63ro&userName=other"),
            Some("micro".into())
        );
        assert_eq!(l.user_name(form, b"userName=&pwd=1"), None);
        assert_eq!(l.user_name(Some("application/json"), b"userName=x"), None);
        assert_eq!(l.user_name(None, b"userName=x"), None);
        assert!(l.applies_to("/user/login") && !l.applies_to("/user/login/"));
    }
}
