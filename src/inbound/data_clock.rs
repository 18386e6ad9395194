//! The clock of message content for the connection driver: when the
//! silence deadline falls, and whether the client sends slower than
//! `server.min_data_rate` (DESIGN §4), counting only the time spent
//! reading content, not the BDAT commands between chunks.

use std::time::Duration;

use tokio::time::Instant;

/// Progress of message content, for the silence deadline and the minimum
/// rate; only the time spent reading content counts (not BDAT commands).
#[derive(Default)]
pub(super) struct DataClock {
    started: Option<Instant>,
    last: Option<Instant>,
    bytes: u64,
    /// Time spent outside content since `started`, and since when, if now.
    paused: Duration,
    paused_since: Option<Instant>,
}

/// Content slower than the minimum rate is tolerated this long first.
const RATE_GRACE: Duration = Duration::from_secs(10);

impl DataClock {
    pub(super) fn start() -> Self {
        let now = Instant::now();
        DataClock {
            started: Some(now),
            last: Some(now),
            ..DataClock::default()
        }
    }

    /// Content stopped (a BDAT chunk is complete).
    pub(super) fn pause(&mut self) {
        self.paused_since = Some(Instant::now());
    }

    /// Content starts again (the next BDAT chunk): silence counts from now.
    pub(super) fn resume(&mut self) {
        let now = Instant::now();
        if let Some(since) = self.paused_since.take() {
            self.paused += now.duration_since(since);
        }
        self.last = Some(now);
    }

    pub(super) fn deadline(&self, silence: Duration) -> Instant {
        self.last.unwrap_or_else(Instant::now) + silence
    }

    /// Records `n` bytes; true when the average rate is below `min_rate`.
    pub(super) fn too_slow(&mut self, n: usize, min_rate: u64) -> bool {
        let now = Instant::now();
        self.last = Some(now);
        self.bytes += n as u64;
        let elapsed = now
            .duration_since(self.started.unwrap_or(now))
            .saturating_sub(self.paused);
        elapsed > RATE_GRACE && (self.bytes as f64) < min_rate as f64 * elapsed.as_secs_f64()
    }
}
