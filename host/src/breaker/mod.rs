//! A Hystrix-style circuit breaker, one per command (`service.method`).
//!
//! Written here rather than taken from a crate: the maintained Rust breakers (`failsafe`,
//! `tower`'s load-shed) model failure-rate policies, but none has Hystrix's combination of a
//! rolling window of per-second buckets, a request-volume threshold, an immediate
//! max-concurrent rejection and a single half-open probe, which is the behaviour the seed's
//! users rely on.
//!
//! - Closed: calls go through. Every outcome lands in the bucket of its second; the window
//!   is the last [`WINDOW_BUCKETS`] seconds. Once the window holds at least
//!   `volume_threshold` calls and `error_percent` of them failed, the breaker opens.
//!   Failures, timeouts and short-circuits count as errors; an application error (the
//!   callee's own refusal) counts as a success.
//! - Open: calls fail at once with `circuit-open` until `sleep_window_ms` has passed.
//! - Half-open: exactly one probe goes through; everyone else is short-circuited. The
//!   probe's success closes the breaker and clears the window; its failure reopens it.
//!
//! Independently, a call beyond `max_concurrent` in flight is rejected at once, and not
//! counted: the cap is the caller's (unlike Hystrix, which counts it), and counting it let
//! one client's flood open a breaker for every other client.
//!
//! One primitive for every caller: rpc, outbound HTTP and a new version's probation all go
//! through [`Breaker::call`] (or its rule, [`BreakerSettings::trips`]), so they count and
//! judge alike. [`Breakers`] holds one breaker per command, from `[breaker]`.

mod metrics;
mod probation;
mod registry;
mod settings;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use metrics::BreakerMetrics;
pub use probation::{Probation, Verdict};
pub use registry::Breakers;
pub use settings::{BreakerConfig, BreakerOverrides, BreakerSettings};

/// Seconds in the rolling window.
pub const WINDOW_BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

/// How a call ended, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Timeout,
}

/// Why the breaker refused a call without running it, or gave up on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    CircuitOpen,
    Rejected,
    /// [`Breaker::call`] only: the call passed the command's timeout (or its budget).
    Timeout,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    second: u64,
    successes: u32,
    errors: u32,
}

#[derive(Debug)]
struct Inner {
    state: State,
    opened_at: Instant,
    in_flight: u32,
    buckets: [Bucket; WINDOW_BUCKETS],
}

/// A snapshot for the admin API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BreakerStatus {
    pub command: String,
    pub state: State,
    pub in_flight: u32,
    pub window_total: u32,
    pub window_errors: u32,
}

pub struct Breaker {
    command: String,
    settings: BreakerSettings,
    epoch: Instant,
    inner: Mutex<Inner>,
    metrics: Arc<BreakerMetrics>,
}

/// A call admitted by the breaker. Dropping it without [`Permit::complete`] (the caller
/// went away) counts as a failure, so a probe can never be lost.
pub struct Permit {
    breaker: Arc<Breaker>,
    probe: bool,
    done: bool,
}

impl Breaker {
    pub fn new(
        command: impl Into<String>,
        settings: BreakerSettings,
        metrics: Arc<BreakerMetrics>,
    ) -> Self {
        let now = Instant::now();
        let command = command.into();
        metrics.created(&command);
        Self {
            command,
            settings,
            metrics,
            epoch: now,
            inner: Mutex::new(Inner {
                state: State::Closed,
                opened_at: now,
                in_flight: 0,
                buckets: [Bucket::default(); WINDOW_BUCKETS],
            }),
        }
    }

    pub fn settings(&self) -> BreakerSettings {
        self.settings
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.settings.timeout_ms)
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// Runs `work` through the breaker: refused at once when open or at `max_concurrent`,
    /// given up after the command's timeout or `budget`, whichever is sooner, and otherwise
    /// counted as `classify` says.
    pub async fn call<T>(
        self: &Arc<Self>,
        budget: Duration,
        work: impl Future<Output = T>,
        classify: impl FnOnce(&T) -> Outcome,
    ) -> Result<T, Refusal> {
        let permit = self.try_acquire()?;
        match tokio::time::timeout(self.timeout().min(budget), work).await {
            Ok(result) => {
                permit.complete(classify(&result));
                Ok(result)
            }
            Err(_elapsed) => {
                permit.complete(Outcome::Timeout);
                Err(Refusal::Timeout)
            }
        }
    }

    /// Admits a call or refuses it at once.
    pub fn try_acquire(self: &Arc<Self>) -> Result<Permit, Refusal> {
        self.try_acquire_at(Instant::now())
    }

    /// [`Self::try_acquire`] at a given time: the breaker's rules are driven by the clock
    /// passed in, so tests can step through windows and sleep periods exactly.
    pub fn try_acquire_at(self: &Arc<Self>, now: Instant) -> Result<Permit, Refusal> {
        let mut inner = self.lock();
        let mut probe = false;
        if inner.state == State::Closed {
            // As Hystrix does, health is also judged when a call asks to go through, so a
            // window that became unhealthy through successes diluting nothing still trips.
            self.trip_if_unhealthy(&mut inner, now);
        }
        match inner.state {
            State::Closed => {}
            State::Open
                if now.duration_since(inner.opened_at)
                    >= Duration::from_millis(self.settings.sleep_window_ms) =>
            {
                self.transition(&mut inner, State::HalfOpen);
                probe = true;
            }
            State::Open | State::HalfOpen => {
                self.record(&mut inner, false, now);
                return Err(Refusal::CircuitOpen);
            }
        }
        if inner.in_flight >= self.settings.max_concurrent {
            if probe {
                // The probe could not run: stay open for another sleep window.
                inner.opened_at = now;
                self.transition(&mut inner, State::Open);
            }
            // Not counted: the caller's own cap is no evidence against the callee, and one
            // client's flood would otherwise open the breaker for everyone.
            return Err(Refusal::Rejected);
        }
        inner.in_flight += 1;
        Ok(Permit {
            breaker: self.clone(),
            probe,
            done: false,
        })
    }

    fn finish(&self, probe: bool, outcome: Outcome, now: Instant) {
        let mut inner = self.lock();
        inner.in_flight -= 1;
        let success = outcome == Outcome::Success;
        if probe {
            if success {
                inner.buckets = [Bucket::default(); WINDOW_BUCKETS];
                self.transition(&mut inner, State::Closed);
            } else {
                inner.opened_at = now;
                self.transition(&mut inner, State::Open);
            }
            return;
        }
        self.record(&mut inner, success, now);
        if !success {
            self.trip_if_unhealthy(&mut inner, now);
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    fn record(&self, inner: &mut Inner, success: bool, now: Instant) {
        let second = self.second(now);
        let bucket = &mut inner.buckets[second as usize % WINDOW_BUCKETS];
        if bucket.second != second {
            *bucket = Bucket {
                second,
                ..Bucket::default()
            };
        }
        if success {
            bucket.successes += 1;
        } else {
            bucket.errors += 1;
        }
    }

    /// (total, errors) over the rolling window.
    fn window(&self, inner: &Inner, now: Instant) -> (u32, u32) {
        let now = self.second(now);
        inner
            .buckets
            .iter()
            .filter(|b| now.saturating_sub(b.second) < WINDOW_BUCKETS as u64)
            .fold((0, 0), |(total, errors), b| {
                (total + b.successes + b.errors, errors + b.errors)
            })
    }

    fn trip_if_unhealthy(&self, inner: &mut Inner, now: Instant) {
        if inner.state != State::Closed {
            return;
        }
        let (total, errors) = self.window(inner, now);
        if self.settings.trips(total, errors) {
            inner.opened_at = now;
            self.transition(inner, State::Open);
        }
    }

    fn transition(&self, inner: &mut Inner, to: State) {
        if inner.state != to {
            tracing::warn!(command = %self.command, from = ?inner.state, to = ?to, "circuit breaker transition");
            inner.state = to;
            self.metrics.entered(&self.command, to);
        }
    }

    pub fn status(&self) -> BreakerStatus {
        let inner = self.lock();
        let (window_total, window_errors) = self.window(&inner, Instant::now());
        BreakerStatus {
            command: self.command.clone(),
            state: inner.state,
            in_flight: inner.in_flight,
            window_total,
            window_errors,
        }
    }
}

impl Permit {
    pub fn complete(self, outcome: Outcome) {
        self.complete_at(outcome, Instant::now());
    }

    pub fn complete_at(mut self, outcome: Outcome, now: Instant) {
        self.done = true;
        self.breaker.finish(self.probe, outcome, now);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.breaker
                .finish(self.probe, Outcome::Failure, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every rule, driven by a clock the test controls (`at(ms)`), so no test sleeps.
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            timeout_ms: 100,
            max_concurrent: 2,
            error_percent: 50,
            volume_threshold: 4,
            sleep_window_ms: 5000,
        }
    }

    /// A breaker and a clock: `at(ms)` is that many milliseconds after its creation.
    fn breaker() -> (Arc<Breaker>, impl Fn(u64) -> Instant) {
        let b = Arc::new(Breaker::new("s.m", settings(), Default::default()));
        let epoch = b.epoch;
        (b, move |ms| epoch + Duration::from_millis(ms))
    }

    fn run(b: &Arc<Breaker>, now: Instant, outcome: Outcome) {
        b.try_acquire_at(now).unwrap().complete_at(outcome, now);
    }

    #[test]
    fn no_trip_below_the_volume_threshold() {
        let (b, at) = breaker();
        for _ in 0..3 {
            run(&b, at(0), Outcome::Failure);
        }
        assert_eq!(
            b.status().state,
            State::Closed,
            "3 of 3 failed, below volume 4"
        );
        run(&b, at(10), Outcome::Failure);
        assert_eq!(b.status().state, State::Open);
        assert_eq!(b.try_acquire_at(at(20)).err(), Some(Refusal::CircuitOpen));
    }

    #[test]
    fn trips_at_the_error_percentage_only() {
        let (b, at) = breaker();
        for _ in 0..3 {
            run(&b, at(0), Outcome::Success);
        }
        run(&b, at(0), Outcome::Failure);
        run(&b, at(0), Outcome::Timeout);
        assert_eq!(b.status().state, State::Closed, "2 of 5: 40% < 50%");
        run(&b, at(0), Outcome::Failure);
        assert_eq!(b.status().state, State::Open, "3 of 6: 50%");
    }

    #[test]
    fn the_window_rolls_over_ten_seconds() {
        let (b, at) = breaker();
        for _ in 0..3 {
            run(&b, at(0), Outcome::Failure);
        }
        // 10.5 s later the first bucket has left the window: 1 failure of 1 is below volume.
        run(&b, at(10_500), Outcome::Failure);
        assert_eq!(b.status().state, State::Closed);
        for _ in 0..3 {
            run(&b, at(11_000), Outcome::Failure);
        }
        assert_eq!(b.status().state, State::Open);
    }

    #[test]
    fn rejections_at_the_callers_cap_are_no_errors_but_short_circuits_are() {
        let (b, at) = breaker();
        let p1 = b.try_acquire_at(at(0)).unwrap();
        let p2 = b.try_acquire_at(at(0)).unwrap();
        // A flood past max_concurrent says nothing about the callee.
        for _ in 0..10 {
            assert_eq!(b.try_acquire_at(at(0)).err(), Some(Refusal::Rejected));
        }
        p1.complete_at(Outcome::Success, at(1));
        p2.complete_at(Outcome::Success, at(1));
        assert_eq!(b.status().window_errors, 0);
        run(&b, at(2), Outcome::Success); // still closed
        // Failures open it (3 of 6 calls); each call refused while open counts.
        for _ in 0..3 {
            run(&b, at(3), Outcome::Failure);
        }
        assert_eq!(b.try_acquire_at(at(3)).err(), Some(Refusal::CircuitOpen));
        assert_eq!(b.status().state, State::Open);
        assert_eq!(b.status().window_errors, 4, "the short-circuit counted");
    }

    #[test]
    fn max_concurrent_rejects_immediately() {
        let (b, at) = breaker();
        let p1 = b.try_acquire_at(at(0)).unwrap();
        let p2 = b.try_acquire_at(at(0)).unwrap();
        assert_eq!(b.try_acquire_at(at(0)).err(), Some(Refusal::Rejected));
        p1.complete_at(Outcome::Success, at(1));
        assert!(b.try_acquire_at(at(1)).is_ok());
        p2.complete_at(Outcome::Success, at(1));
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through() {
        let (b, at) = breaker();
        for _ in 0..4 {
            run(&b, at(0), Outcome::Failure);
        }
        assert_eq!(
            b.try_acquire_at(at(4_999)).err(),
            Some(Refusal::CircuitOpen)
        );
        let probe = b.try_acquire_at(at(5_000)).expect("the probe");
        assert_eq!(b.status().state, State::HalfOpen);
        assert_eq!(
            b.try_acquire_at(at(5_001)).err(),
            Some(Refusal::CircuitOpen)
        );
        probe.complete_at(Outcome::Failure, at(5_100));
        assert_eq!(b.status().state, State::Open, "a failed probe reopens");
        assert_eq!(
            b.try_acquire_at(at(10_000)).err(),
            Some(Refusal::CircuitOpen),
            "for a new sleep window"
        );
        run(&b, at(10_100), Outcome::Success);
        assert_eq!(b.status().state, State::Closed, "a good probe closes");
        assert_eq!(b.status().window_total, 0, "and resets the window");
    }

    #[test]
    fn a_dropped_permit_counts_as_a_failure() {
        let (b, at) = breaker();
        for _ in 0..4 {
            drop(b.try_acquire_at(at(0)).unwrap());
        }
        assert_eq!(b.status().state, State::Open);
        assert_eq!(b.status().in_flight, 0);
    }
}
