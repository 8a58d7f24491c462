//! The metrics registry's shared vocabulary. There is one `prometheus_client` registry per
//! host, built at start: every part registers its own series in it and keeps the handles,
//! and both `GET /metrics` and the admin JSON read those same series, so an event is
//! counted once. Labels are names the config or the plugins folder bounds (routes,
//! plugins, commands), never a raw path or a value a client chose, so series stay few.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The registry every part registers in (series named `micro_api_*`).
pub fn registry() -> Registry {
    Registry::with_prefix("micro_api")
}

/// A family of histograms made by [`latency`].
pub type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 0.1 ms to about 3 s.
pub fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// A family of latency histograms.
pub fn histograms<L: Clone + std::hash::Hash + Eq>() -> Histograms<L> {
    Family::new_with_constructor(latency)
}

/// Registers series one line apiece, `name, help, handle;` (each handle cloned): a part
/// with several series would otherwise repeat the same five-line call for each.
macro_rules! register {
    ($registry:expr, $($name:literal, $help:literal, $metric:expr;)+) => {
        $($registry.register($name, $help, $metric.clone());)+
    };
}
pub(crate) use register;

/// Everything, in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabel {
    pub plugin: String,
}

/// A count of one kind of refusal that is logged at most once a second, so a flood of
/// hostile clients shows in the log without filling it.
pub struct Refusals {
    count: Counter,
    logged_at: AtomicU64,
}

impl Refusals {
    /// Registered under `name` (`front_<name>` etc.: the caller's prefix) with `help`.
    pub fn register(registry: &mut Registry, name: &str, help: &str) -> Self {
        let count = Counter::default();
        registry.register(name, help, count.clone());
        Self {
            count,
            logged_at: AtomicU64::new(0),
        }
    }

    /// Counts one; `Some(total)` when it should be logged (the first of its second).
    pub fn hit(&self) -> Option<u64> {
        let total = self.count.inc() + 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let previous = self.logged_at.swap(now, Relaxed);
        (previous != now).then_some(total)
    }

    pub fn get(&self) -> u64 {
        self.count.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_hit_and_logs_one_a_second() {
        let mut registry = registry();
        let c = Refusals::register(&mut registry, "test_refusals", "test");
        assert_eq!(c.hit(), Some(1));
        let logged = (0..1000).filter_map(|_| c.hit()).count();
        assert!(logged <= 1, "{logged} log lines within a second or two");
        assert_eq!(c.get(), 1001);
        assert!(render(&registry).contains("micro_api_test_refusals_total 1001"));
    }
}
