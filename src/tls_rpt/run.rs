//! The sender as a task of the running relay: ticks when something is
//! due and at least every five minutes (a new day appears at midnight),
//! until shutdown.
//!
//! Its clock is the system's, shifted by `TLSRELAY_TEST_CLOCK_OFFSET`
//! seconds when that is set: the tests' way past a day's end without
//! waiting for it. The relay warns at start-up when it is set; nothing
//! else in the relay reads it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::send::{Outside, Sender};

/// The longest the task sleeps between ticks.
const TICK: i64 = 300;

/// The variable that shifts the report clock (tests only).
pub const CLOCK_OFFSET_VAR: &str = "TLSRELAY_TEST_CLOCK_OFFSET";

/// The report clock: Unix seconds, shifted by [`CLOCK_OFFSET_VAR`].
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    offset: i64,
}

impl Clock {
    /// The system clock, shifted as the environment says (warned).
    pub fn from_env() -> Clock {
        let offset = std::env::var(CLOCK_OFFSET_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0);
        if offset != 0 {
            tracing::warn!(
                offset_seconds = offset,
                "{CLOCK_OFFSET_VAR} is set: TLS-RPT reports are scheduled by a shifted clock (for tests)"
            );
        }
        Clock { offset }
    }

    pub fn now(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        now + self.offset
    }
}

/// Runs `sender` until `shutdown`.
pub async fn run<O: Outside>(mut sender: Sender<O>, clock: Clock, shutdown: CancellationToken) {
    loop {
        let next = sender.tick(clock.now()).await;
        let wait = next.map_or(TICK, |at| (at - clock.now()).clamp(1, TICK));
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(wait as u64)) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
