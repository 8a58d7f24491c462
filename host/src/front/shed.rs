//! Adaptive load shedding for the public front door: while the host's CPU is saturated, a
//! request beyond what the host has shown it can carry is answered 503 at once instead of
//! queueing behind the others, so the requests it does take keep their latency.
//!
//! The policy is go-zero's adaptive shedder (Kratos' BBR limiter is the same idea): over a
//! rolling window of buckets, the most requests finished in one bucket and the shortest
//! mean response time of a bucket give, by Little's law, the requests the host can have in
//! flight at its best (`max_flight`). A request is shed when the CPU use is over
//! `[front] shed_cpu_threshold` (or a request was shed within `shed_cool_off_ms`, so the
//! limiter does not flap) and more than `max_flight` requests are in flight.
//!
//! Unlike go-zero's, it sheds fairly: only a request whose client address holds more than
//! its share of `max_flight` (shared out among the addresses with requests in flight, at
//! least one each), so one client's flood is shed and another client's request is not. A
//! client's only request is never shed: a crowd of single requests is bounded by
//! `[front] max_connections` instead.
//!
//! By hand: tower's `load_shed` only sheds when the inner service reports not ready, which
//! a gateway of plugin instances never does, and no maintained crate implements this policy.
//! Counters are atomics, not a lock: every request of the public listener passes here.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

/// How often the CPU use is sampled (go-zero samples every 250 ms too).
const CPU_SAMPLE: Duration = Duration::from_millis(250);
/// Weight of the previous average in the CPU use's moving average: about 2.5 s to follow
/// a change.
const CPU_SMOOTHING: f64 = 0.9;

/// The shedder's settings, from `[front]`.
#[derive(Debug, Clone, Copy)]
pub struct ShedSettings {
    pub enabled: bool,
    /// CPU use, as a fraction of the cores the host may use, from which shedding starts.
    pub cpu_threshold: f64,
    pub window: Duration,
    pub buckets: usize,
    pub cool_off: Duration,
}

/// One bucket of the rolling window: requests finished in it and their response times.
#[derive(Default)]
struct Bucket {
    /// The bucket's number since the shedder started (which span of time it holds).
    epoch: AtomicU64,
    finished: AtomicU64,
    response_us: AtomicU64,
}

pub struct Shedder {
    settings: ShedSettings,
    started: Instant,
    bucket_us: u64,
    buckets: Vec<Bucket>,
    in_flight: AtomicUsize,
    /// When a request was last shed, in µs since `started` (0: never).
    last_shed_us: AtomicU64,
    cpu: CpuUse,
}

impl Shedder {
    pub fn new(settings: ShedSettings) -> Self {
        let buckets = settings.buckets.max(1);
        Self {
            settings,
            started: Instant::now(),
            bucket_us: (settings.window.as_micros() as u64 / buckets as u64).max(1),
            buckets: (0..buckets).map(|_| Bucket::default()).collect(),
            in_flight: AtomicUsize::new(0),
            last_shed_us: AtomicU64::new(0),
            cpu: CpuUse::new(),
        }
    }

    /// A place among the requests in flight for a request whose address holds `held`
    /// requests in flight (this one included) while `addresses` addresses hold some, or
    /// `None`: shed it. The place records the request's response time when it is dropped.
    pub fn admit(&self, held: usize, addresses: usize) -> Option<Flight<'_>> {
        let flying = self.in_flight.fetch_add(1, Relaxed) + 1;
        let flight = Flight {
            shedder: self,
            since: Instant::now(),
        };
        if self.settings.enabled && held > 1 && self.overloaded(flying, held, addresses) {
            flight.shed();
            return None;
        }
        Some(flight)
    }

    /// The CPU use now, as a fraction of the cores the host may use (sampled at most every
    /// 250 ms).
    pub fn cpu_use(&self) -> f64 {
        self.cpu.now()
    }

    fn overloaded(&self, flying: usize, held: usize, addresses: usize) -> bool {
        let now = self.micros();
        let last_shed = self.last_shed_us.load(Relaxed);
        let cooling = last_shed != 0
            && now.saturating_sub(last_shed) < self.settings.cool_off.as_micros() as u64;
        if !cooling && self.cpu.now() < self.settings.cpu_threshold {
            return false;
        }
        let over = self.max_flight(now).is_some_and(|max| {
            let share = (max / addresses.max(1) as f64).max(1.0);
            flying as f64 > max && held as f64 > share
        });
        if over {
            self.last_shed_us.store(now.max(1), Relaxed);
        }
        over
    }

    /// Requests the host can have in flight at its best in the window: the most finished in
    /// one bucket over a bucket's time, times the shortest mean response time of a bucket.
    /// `None` before any full bucket has finished a request: nothing to judge by yet.
    fn max_flight(&self, now: u64) -> Option<f64> {
        let current = now / self.bucket_us;
        let oldest = current.saturating_sub(self.buckets.len() as u64);
        let mut most_finished = 0;
        let mut shortest_us = f64::INFINITY;
        for bucket in &self.buckets {
            let epoch = bucket.epoch.load(Relaxed);
            // The bucket being filled now is left out, as go-zero does: it is partial.
            if epoch >= current || epoch < oldest {
                continue;
            }
            let finished = bucket.finished.load(Relaxed);
            if finished == 0 {
                continue;
            }
            most_finished = most_finished.max(finished);
            let mean = bucket.response_us.load(Relaxed) as f64 / finished as f64;
            shortest_us = shortest_us.min(mean);
        }
        (most_finished > 0).then(|| {
            let per_us = most_finished as f64 / self.bucket_us as f64;
            // Rounded as go-zero does.
            (per_us * shortest_us + 0.5).floor().max(1.0)
        })
    }

    fn record(&self, response: Duration) {
        let now = self.micros();
        let epoch = now / self.bucket_us;
        let bucket = &self.buckets[(epoch % self.buckets.len() as u64) as usize];
        // The first request of a new span of time empties the bucket; one finishing at the
        // same moment may be lost from it, which an estimate can afford.
        if bucket.epoch.load(Relaxed) != epoch && bucket.epoch.swap(epoch, Relaxed) != epoch {
            bucket.finished.store(0, Relaxed);
            bucket.response_us.store(0, Relaxed);
        }
        bucket.finished.fetch_add(1, Relaxed);
        bucket
            .response_us
            .fetch_add(response.as_micros() as u64, Relaxed);
    }

    fn micros(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }
}

/// A request in flight; counted as finished, with its response time, when dropped.
pub struct Flight<'a> {
    shedder: &'a Shedder,
    since: Instant,
}

impl Flight<'_> {
    /// Leaves the requests in flight without a response time (it was shed).
    fn shed(self) {
        self.shedder.in_flight.fetch_sub(1, Relaxed);
        std::mem::forget(self);
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.shedder.in_flight.fetch_sub(1, Relaxed);
        self.shedder.record(self.since.elapsed());
    }
}

/// The host process's CPU use (all its threads, user and system time), as a moving average
/// of the fraction of the cores it may use.
struct CpuUse {
    started: Instant,
    cores: f64,
    /// The average, as `f64` bits.
    average: AtomicU64,
    /// When it was last sampled, in µs since `started`, and the CPU time then, in µs.
    sampled_at_us: AtomicU64,
    cpu_at_us: AtomicU64,
}

impl CpuUse {
    fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            started: Instant::now(),
            cores: cores as f64,
            average: AtomicU64::new(0f64.to_bits()),
            sampled_at_us: AtomicU64::new(0),
            cpu_at_us: AtomicU64::new(process_cpu_us()),
        }
    }

    fn now(&self) -> f64 {
        let now = self.started.elapsed().as_micros() as u64;
        let last = self.sampled_at_us.load(Relaxed);
        let due = now.saturating_sub(last) >= CPU_SAMPLE.as_micros() as u64;
        // One caller samples; the others read the average as it is.
        if due
            && self
                .sampled_at_us
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            let cpu = process_cpu_us();
            let spent = cpu.saturating_sub(self.cpu_at_us.swap(cpu, Relaxed));
            let usage = spent as f64 / ((now - last).max(1) as f64 * self.cores);
            let previous = f64::from_bits(self.average.load(Relaxed));
            let average = previous * CPU_SMOOTHING + usage.min(1.0) * (1.0 - CPU_SMOOTHING);
            self.average.store(average.to_bits(), Relaxed);
        }
        f64::from_bits(self.average.load(Relaxed))
    }
}

/// User and system CPU time of the whole process so far, in µs.
fn process_cpu_us() -> u64 {
    // SAFETY: getrusage only writes the struct it is given, which lives on this stack.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0;
        }
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(cpu_threshold: f64) -> ShedSettings {
        ShedSettings {
            enabled: true,
            cpu_threshold,
            window: Duration::from_millis(500),
            buckets: 5,
            cool_off: Duration::from_millis(1000),
        }
    }

    /// Two requests of 10 ms at a time, 20 finished in each 100 ms bucket: the host
    /// carries two in flight (20 per 100 ms x 10 ms).
    async fn carrying_two(shedder: &Shedder) {
        for _ in 0..30 {
            let flights = (shedder.admit(1, 1).unwrap(), shedder.admit(2, 1).unwrap());
            tokio::time::advance(Duration::from_millis(10)).await;
            drop(flights);
        }
    }

    /// With the CPU "saturated" (threshold 0), a third request in flight from the one
    /// address is shed, and the first two are not.
    #[tokio::test(start_paused = true)]
    async fn past_the_flight_the_host_has_carried_requests_are_shed_while_the_cpu_is_hot() {
        let shedder = Shedder::new(settings(0.0));
        assert!(
            shedder.admit(2, 1).is_some(),
            "nothing to judge by yet: admitted"
        );
        carrying_two(&shedder).await;
        let two = (shedder.admit(1, 1).unwrap(), shedder.admit(2, 1).unwrap());
        assert!(shedder.admit(3, 1).is_none(), "a third in flight is shed");
        drop(two);
        assert_eq!(shedder.in_flight.load(Relaxed), 0);
    }

    /// An address holding both places the host carries has its third shed; a second
    /// address's only request is never shed, its second (past its share: one of the two
    /// places, among two addresses) is.
    #[tokio::test(start_paused = true)]
    async fn the_address_holding_more_than_its_share_is_shed_not_the_others() {
        let shedder = Shedder::new(settings(0.0));
        carrying_two(&shedder).await;
        let flood = (shedder.admit(1, 1).unwrap(), shedder.admit(2, 1).unwrap());
        assert!(
            shedder.admit(1, 2).is_some(),
            "another address's only request"
        );
        assert!(shedder.admit(3, 2).is_none(), "the flood's third");
        assert!(
            shedder.admit(2, 2).is_none(),
            "a second address's second, past its share"
        );
        drop(flood);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_shed_while_the_cpu_is_under_the_threshold_or_when_turned_off() {
        for shedder in [
            Shedder::new(settings(2.0)),
            Shedder::new(ShedSettings {
                enabled: false,
                ..settings(0.0)
            }),
        ] {
            carrying_two(&shedder).await;
            let held: Vec<_> = (1..50).map(|n| shedder.admit(n, 1)).collect();
            assert!(held.iter().all(Option::is_some));
        }
    }
}
