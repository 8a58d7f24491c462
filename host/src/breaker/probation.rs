//! A new version's probation: its first N outcomes, judged by the breaker's rule with the
//! `[breaker.default]` error percentage. A version that fails it is handed back to its
//! lifecycle (which rolls it back); one that passes is trusted from then on.

use std::sync::atomic::{AtomicU32, Ordering};

use super::BreakerSettings;

/// The outcomes still to be judged, and what they were.
#[derive(Debug, Default)]
pub struct Probation {
    /// Outcomes still to be judged; 0 when not on probation.
    remaining: AtomicU32,
    failed: AtomicU32,
    total: AtomicU32,
}

/// How a probation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// `failed` of the first `total` outcomes failed: at or past the error percentage.
    Failed {
        failed: u32,
        total: u32,
    },
}

impl Probation {
    /// Starts judging the next `outcomes` outcomes.
    pub fn start(&self, outcomes: u32) {
        self.failed.store(0, Ordering::Relaxed);
        self.total.store(outcomes, Ordering::Relaxed);
        self.remaining.store(outcomes, Ordering::Relaxed);
    }

    pub fn end(&self) {
        self.remaining.store(0, Ordering::Relaxed);
    }

    /// Counts one outcome; the verdict when it was the last one judged.
    pub fn record(&self, failed: bool, rules: &BreakerSettings) -> Option<Verdict> {
        let before = self
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(1)
            })
            .ok()?;
        let failures = if failed {
            self.failed.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            self.failed.load(Ordering::Acquire)
        };
        if before != 1 {
            return None;
        }
        let total = self.total.load(Ordering::Relaxed);
        let judged = BreakerSettings {
            volume_threshold: total,
            ..*rules
        };
        Some(if judged.trips(total, failures) {
            Verdict::Failed {
                failed: failures,
                total,
            }
        } else {
            Verdict::Passed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_judged_outcome_gives_the_verdict() {
        let rules = BreakerSettings::default();
        let p = Probation::default();
        assert_eq!(p.record(true, &rules), None, "not on probation");
        p.start(3);
        assert_eq!(p.record(true, &rules), None);
        assert_eq!(p.record(false, &rules), None);
        assert_eq!(
            p.record(false, &rules),
            Some(Verdict::Passed),
            "1 of 3 is under 50%"
        );
        p.start(2);
        p.record(true, &rules);
        assert_eq!(
            p.record(false, &rules),
            Some(Verdict::Failed {
                failed: 1,
                total: 2
            })
        );
        assert_eq!(p.record(true, &rules), None, "ended");
    }
}
