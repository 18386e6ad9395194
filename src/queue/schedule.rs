//! When to try again, when to warn, when to give up: pure arithmetic over
//! `[queue]` (DESIGN.md §6), in Unix seconds, with the jitter passed in so
//! tests choose it.

use std::time::Duration;

use crate::config::QueueConfig;

/// The retry policy of `[queue]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    intervals: Vec<Duration>,
    max_age: Duration,
    delay_warning: Option<Duration>,
}

/// How much a retry interval may move either way (±10 %), so that messages
/// deferred together by one outage do not all come back in the same second.
pub const JITTER: f64 = 0.10;

impl Schedule {
    pub fn new(config: &QueueConfig) -> Self {
        Schedule {
            intervals: config.retry_intervals.iter().map(|d| d.0).collect(),
            max_age: config.max_age.0,
            delay_warning: config.delay_warning().map(|d| d.0),
        }
    }

    /// The wait after the `attempts`-th failed attempt (1-based): the
    /// matching interval, the last one repeating, moved by `jitter` in
    /// [-1, 1] times [`JITTER`].
    pub fn retry_after(&self, attempts: u32, jitter: f64) -> Duration {
        let index = (attempts.max(1) as usize - 1).min(self.intervals.len().saturating_sub(1));
        let base = self
            .intervals
            .get(index)
            .copied()
            .unwrap_or(Duration::from_secs(300));
        base.mul_f64(1.0 + JITTER * jitter.clamp(-1.0, 1.0))
    }

    /// The time of the next attempt after a failure at `now`, never later
    /// than the moment the message expires (so the bounce is not late).
    pub fn next_attempt(&self, received_at: i64, attempts: u32, now: i64, jitter: f64) -> i64 {
        let wait = self.retry_after(attempts, jitter).as_secs().max(1) as i64;
        (now + wait).min(self.expires_at(received_at).max(now + 1))
    }

    /// When an undelivered message is bounced.
    pub fn expires_at(&self, received_at: i64) -> i64 {
        received_at.saturating_add(self.max_age.as_secs() as i64)
    }

    pub fn expired(&self, received_at: i64, now: i64) -> bool {
        now >= self.expires_at(received_at)
    }

    /// True when a delayed-delivery notice is due and was not sent yet.
    pub fn delay_warning_due(&self, received_at: i64, now: i64, warned: bool) -> bool {
        match self.delay_warning {
            Some(after) if !warned => now >= received_at.saturating_add(after.as_secs() as i64),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::HumanDuration;
    use crate::config::DelayWarning;

    fn schedule() -> Schedule {
        Schedule::new(&QueueConfig {
            retry_intervals: [60, 300, 900]
                .map(|s| HumanDuration(Duration::from_secs(s)))
                .to_vec(),
            max_age: HumanDuration(Duration::from_secs(3600)),
            delay_warning_after: DelayWarning::After(HumanDuration(Duration::from_secs(1800))),
            ..QueueConfig::default()
        })
    }

    #[test]
    fn intervals_in_order_then_the_last_repeats() {
        let s = schedule();
        let waits: Vec<u64> = (1..=5).map(|n| s.retry_after(n, 0.0).as_secs()).collect();
        assert_eq!(waits, [60, 300, 900, 900, 900]);
        assert_eq!(s.retry_after(0, 0.0).as_secs(), 60);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let s = schedule();
        assert_eq!(s.retry_after(2, 1.0).as_secs(), 330);
        assert_eq!(s.retry_after(2, -1.0).as_secs(), 270);
        assert_eq!(s.retry_after(2, 7.0).as_secs(), 330, "clamped");
    }

    #[test]
    fn the_last_retry_is_at_expiry_and_expiry_bounces() {
        let s = schedule();
        assert_eq!(s.next_attempt(0, 1, 100, 0.0), 160);
        assert_eq!(
            s.next_attempt(0, 3, 3000, 0.0),
            3600,
            "not later than max_age"
        );
        assert!(!s.expired(0, 3599));
        assert!(s.expired(0, 3600));
    }

    #[test]
    fn delay_warning_once_after_its_time() {
        let s = schedule();
        assert!(!s.delay_warning_due(0, 1799, false));
        assert!(s.delay_warning_due(0, 1800, false));
        assert!(!s.delay_warning_due(0, 1800, true));
    }
}
