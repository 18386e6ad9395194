//! Inbound flow control (DESIGN.md §4): when delivery cannot keep up,
//! inbound slows down instead of the queue growing without bound, as
//! Postfix's `in_flow_delay` does. The measure is the backlog, the queued
//! messages due now and waiting for a delivery slot
//! ([`crate::queue::backlog`]):
//!
//! * past half of `[queue] backlog_limit`, the `250` to each message's
//!   content waits, in proportion, up to `in_flow_delay` at the limit: a
//!   client that sends one message after another slows to delivery's pace;
//! * at the limit, `MAIL` is refused `452 4.3.1` until the backlog drops.
//!
//! Mail already committed is never refused: the delay comes after the
//! commit, and a transaction under way is never cut short.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::QueueConfig;
use crate::queue::backlog::Backlog;

/// The limits, and the count they apply to.
#[derive(Clone, Debug)]
pub struct Flow {
    backlog: Backlog,
    /// `0`: no limit.
    limit: usize,
    max_delay: Duration,
}

impl Flow {
    pub fn new(config: &QueueConfig, backlog: Backlog) -> Self {
        Flow {
            backlog,
            limit: config.backlog_limit,
            max_delay: config.in_flow_delay.0,
        }
    }

    /// True when a new transaction must wait: the backlog is at the limit.
    pub fn refuses_mail(&self) -> bool {
        self.limit > 0 && self.backlog.get() >= self.limit
    }

    /// How long the `250` to a committed message waits: nothing up to
    /// half the limit, then in proportion, `in_flow_delay` at the limit.
    pub fn delay(&self) -> Duration {
        delay(self.backlog.get(), self.limit, self.max_delay)
    }

    /// Waits [`Flow::delay`] before a committed message's `250`, so that
    /// a client sending one message after another slows to delivery's
    /// pace. A stop cuts the wait short: the message is safe, and the
    /// client should hear so before the session closes.
    pub async fn slow_down(&self, shutdown: &CancellationToken) {
        let delay = self.delay();
        if delay.is_zero() {
            return;
        }
        crate::metrics::flow_delayed();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

fn delay(backlog: usize, limit: usize, max: Duration) -> Duration {
    let half = limit / 2;
    if limit == 0 || backlog <= half {
        return Duration::ZERO;
    }
    let span = (limit - half) as u128;
    let over = (backlog - half).min(limit - half) as u128;
    let nanos = max.as_nanos() * over / span;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_delay_grows_from_half_the_limit_to_the_full_delay_at_it() {
        assert_eq!(delay(0, 100, SECOND), Duration::ZERO);
        assert_eq!(delay(50, 100, SECOND), Duration::ZERO);
        assert_eq!(delay(75, 100, SECOND), SECOND / 2);
        assert_eq!(delay(100, 100, SECOND), SECOND);
        assert_eq!(
            delay(1_000_000, 100, SECOND),
            SECOND,
            "never past the maximum"
        );
        assert_eq!(delay(1, 1, SECOND), SECOND);
        // Turned off: no limit, or no delay.
        assert_eq!(delay(1_000_000, 0, SECOND), Duration::ZERO);
        assert_eq!(delay(100, 100, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn mail_is_refused_at_the_limit_and_never_without_one() {
        let backlog = Backlog::default();
        let mut config = QueueConfig {
            backlog_limit: 10,
            ..QueueConfig::default()
        };
        let flow = Flow::new(&config, backlog.clone());
        backlog.set(9);
        assert!(!flow.refuses_mail());
        assert_eq!(flow.delay(), SECOND * 4 / 5);
        backlog.set(10);
        assert!(flow.refuses_mail());
        config.backlog_limit = 0;
        let unlimited = Flow::new(&config, backlog.clone());
        backlog.set(usize::MAX);
        assert!(!unlimited.refuses_mail());
        assert_eq!(unlimited.delay(), Duration::ZERO);
    }
}
