//! The relay's transit store: the [`Sink`] delivery reports to, over
//! `SPOOL_DIR/transit/` (folder 0700, files 0600; layout in
//! [`super::files`]).
//!
//! `record` counts the event in memory (a short lock, no I/O) and writes
//! its journal line with one `write(2)` before it returns, so a crash of
//! the process loses nothing counted. It never fsyncs nor rotates: a
//! thread of its own syncs the segments that changed, at most once a
//! second (group commit), on a duplicate of the descriptor so no `record`
//! waits for it, and rotates them into the day's snapshot (see
//! [`super::writer`]), so the folder and a read of a day stay bounded. A
//! power cut can lose at most that last second.
//!
//! At most [`DOMAIN_LIMIT`] domains are counted per day; the rest go
//! under `(other)`, with one warning. Opening the store prunes the files
//! older than `[report] history`, folds every segment a previous run left
//! into its day's snapshot, and counts today's snapshot again.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime};

use time::Date;

use super::aggregate::{DayCounts, OTHER_DOMAIN};
use super::files;
use super::journal;
use super::writer::{lock, Writer};
use super::{Event, Sink};
use crate::queue::modes;

pub use super::writer::Rotation;

/// Domains counted by name per day; beyond, `(other)`.
pub const DOMAIN_LIMIT: usize = 10_000;

/// How often changed segments are synced to disk (and rotations looked for).
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// How often the files beyond `[report] history` are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Days kept in memory: today and yesterday (late events).
const DAYS_IN_MEMORY: i64 = 2;

/// What the sync thread is asked.
enum Ask {
    /// Sync and rotate what is due now, and say how it went.
    Flush(mpsc::Sender<io::Result<()>>),
    /// A segment grew past its rotation size.
    Due,
}

pub struct Store {
    inner: Arc<Inner>,
    /// Wakes the sync thread to sync now, and tells the caller when done.
    sync: Option<mpsc::Sender<Ask>>,
}

struct Inner {
    folder: PathBuf,
    /// `[report] history`: older files are pruned, at open and hourly.
    history: Duration,
    days: Mutex<BTreeMap<Date, DayState>>,
    writer: Writer,
    /// The clock of `open_at` against the system's (tests), in seconds.
    shift: i64,
    /// A write failed and was reported; reported again once one works.
    failing: AtomicBool,
}

#[derive(Default)]
struct DayState {
    counts: DayCounts,
    warned_full: bool,
}

impl Store {
    /// Opens the store of `spool_dir` for the relay: compacts finished
    /// days, prunes beyond `history`, reloads today, starts the sync thread.
    pub fn open(spool_dir: &Path, history: Duration) -> io::Result<Store> {
        Self::open_at(spool_dir, history, SystemTime::now())
    }

    /// [`Store::open`] as if it were `now` (tests).
    pub fn open_at(spool_dir: &Path, history: Duration, now: SystemTime) -> io::Result<Store> {
        Self::open_with(spool_dir, history, now, Rotation::default())
    }

    /// [`Store::open_at`] with segments rotated at `rotation` (tests).
    pub fn open_with(
        spool_dir: &Path,
        history: Duration,
        now: SystemTime,
        rotation: Rotation,
    ) -> io::Result<Store> {
        let folder = journal::folder(spool_dir);
        modes::create_folder(&folder)?;
        let today = journal::day_of(now);
        prune(&folder, today, history)?;
        let writer = Writer::new(folder.clone(), rotation);
        let mut days = BTreeMap::new();
        for day in files::days(&folder)? {
            // Nothing appends yet: every segment a run left is folded in.
            match files::compact(&folder, day, u64::MAX) {
                Ok(0) => {}
                Ok(torn) => {
                    tracing::warn!(day = %journal::day_name(day), lines = torn, "transit journal: skipped lines that did not parse (torn by a crash)")
                }
                Err(e) => {
                    tracing::warn!(day = %journal::day_name(day), error = %e, "could not compact a day of transit records; its journal stays")
                }
            }
            if day < today {
                continue;
            }
            let read = files::read_day(&folder, day)?;
            writer.seed(day)?;
            days.insert(
                day,
                DayState {
                    counts: read.counts,
                    warned_full: false,
                },
            );
        }
        let shift = seconds(now) - seconds(SystemTime::now());
        let inner = Arc::new(Inner {
            writer,
            folder,
            history,
            days: Mutex::new(days),
            shift,
            failing: AtomicBool::new(false),
        });
        let (sender, receiver) = mpsc::channel::<Ask>();
        let weak = Arc::downgrade(&inner);
        let spawned = std::thread::Builder::new()
            .name("transit-sync".into())
            .spawn(move || {
                let mut pruned = std::time::Instant::now();
                loop {
                    let asked = match receiver.recv_timeout(SYNC_EVERY) {
                        Ok(Ask::Flush(done)) => Some(done),
                        Ok(Ask::Due) | Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    };
                    let Some(inner) = weak.upgrade() else { break };
                    let synced = inner.sync_and_rotate();
                    if let Some(done) = asked {
                        let _ = done.send(synced);
                    }
                    if pruned.elapsed() >= PRUNE_EVERY {
                        pruned = std::time::Instant::now();
                        if let Err(e) = prune(&inner.folder, inner.today(), inner.history) {
                            tracing::warn!(error = %e, "could not prune the transit records");
                        }
                    }
                }
            });
        if let Err(e) = &spawned {
            tracing::warn!(error = %e, "no thread to sync the transit journal: synced only at stop");
        }
        Ok(Store {
            inner,
            sync: spawned.ok().map(|_| sender),
        })
    }

    /// Syncs every segment written to and rotates those due, now (the
    /// stop; tests).
    pub fn flush(&self) -> io::Result<()> {
        if let Some(sync) = &self.sync {
            let (done, wait) = mpsc::channel();
            if sync.send(Ask::Flush(done)).is_ok() {
                if let Ok(result) = wait.recv() {
                    return result;
                }
            }
        }
        self.inner.sync_and_rotate()
    }

    /// The counts of `day` as this process holds them (today, yesterday).
    pub fn day(&self, day: Date) -> DayCounts {
        lock(&self.inner.days)
            .get(&day)
            .map(|state| state.counts.clone())
            .unwrap_or_default()
    }

    /// The folder of the files.
    pub fn folder(&self) -> &Path {
        &self.inner.folder
    }
}

impl Sink for Store {
    fn record(&self, mut event: Event) {
        crate::metrics::transit(
            event.method,
            event.tls_version.as_deref(),
            event.sessions,
            event.messages,
        );
        let day = journal::day_of(event.at);
        self.inner.count(day, &mut event);
        match self.inner.writer.append(day, &event) {
            Err(e) => {
                if !self.inner.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(folder = %self.inner.folder.display(), error = %e, "could not write the transit journal: events are counted in memory only until a write works");
                }
                return;
            }
            Ok(true) => {
                if let Some(sync) = &self.sync {
                    let _ = sync.send(Ask::Due);
                }
            }
            Ok(false) => {}
        }
        if self.inner.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(folder = %self.inner.folder.display(), "the transit journal is written again");
        }
    }
}

impl Inner {
    /// Counts `event` in memory, under `(other)` when the day is full.
    fn count(&self, day: Date, event: &mut Event) {
        let mut days = lock(&self.days);
        let newest = days.keys().next_back().copied();
        if newest.is_none_or(|newest| day > newest) {
            let keep_from = day.saturating_sub(time::Duration::days(DAYS_IN_MEMORY - 1));
            days.retain(|d, _| *d >= keep_from);
        }
        let state = days.entry(day).or_default();
        if state.counts.is_full_for(&event.domain, DOMAIN_LIMIT) {
            if !state.warned_full {
                state.warned_full = true;
                tracing::warn!(day = %journal::day_name(day), limit = DOMAIN_LIMIT, domain = %event.domain, "transit records: too many domains today; the rest are counted under (other)");
            }
            event.domain = OTHER_DOMAIN.to_string();
        }
        state.counts.add(event);
    }

    /// Today by the store's clock.
    fn today(&self) -> Date {
        let now = SystemTime::now();
        let shift = Duration::from_secs(self.shift.unsigned_abs());
        journal::day_of(match self.shift >= 0 {
            true => now + shift,
            false => now - shift,
        })
    }

    /// What the sync thread does each tick: sync, then rotate.
    fn sync_and_rotate(&self) -> io::Result<()> {
        let synced = self.writer.sync();
        if let Err(e) = &synced {
            tracing::warn!(error = %e, "could not sync the transit journal");
        }
        let rotated = self.writer.rotate_due(self.today());
        synced.and(rotated)
    }
}

fn seconds(at: SystemTime) -> i64 {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}

/// Removes the files of days older than `history` before `today`.
fn prune(folder: &Path, today: Date, history: Duration) -> io::Result<()> {
    let keep = (history.as_secs().div_ceil(86_400)).max(1) as i64;
    let oldest = today.saturating_sub(time::Duration::days(keep - 1));
    for day in files::days(folder)? {
        if day < oldest {
            files::remove_day(folder, day)?;
            tracing::info!(day = %journal::day_name(day), "transit records pruned ([report] history)");
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "rotation_tests.rs"]
mod rotation_tests;

#[cfg(test)]
#[path = "requiretls_tests.rs"]
mod requiretls_tests;
