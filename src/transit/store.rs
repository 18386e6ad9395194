//! The relay's transit store: the [`Sink`] delivery reports to, over
//! `SPOOL_DIR/transit/` (folder 0700, files 0600; see [`super::journal`]).
//!
//! `record` counts the event in memory (a short lock, no I/O) and writes
//! its journal line with one `write(2)` before it returns, so a crash of
//! the process loses nothing counted. It never fsyncs: a thread of its
//! own syncs the journals that changed, at most once a second (group
//! commit), on a duplicate of the descriptor so no `record` waits for it.
//! A power cut can lose at most that last second.
//!
//! At most [`DOMAIN_LIMIT`] domains are counted per day; the rest go
//! under `(other)`, with one warning. Opening the store compacts the
//! journals of finished days, prunes the files older than `[report]
//! history` and counts today's journal again.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use time::Date;

use super::aggregate::{DayCounts, OTHER_DOMAIN};
use super::journal::{self, Compact, Line};
use super::{Event, Policy, Sink};
use crate::queue::modes;

/// Domains counted by name per day; beyond, `(other)`.
pub const DOMAIN_LIMIT: usize = 10_000;

/// How often changed journals are synced to disk.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// How often the files beyond `[report] history` are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Days kept in memory: today and yesterday (late events).
const DAYS_IN_MEMORY: i64 = 2;

pub struct Store {
    inner: Arc<Inner>,
    /// Wakes the sync thread to sync now, and tells the caller when done.
    sync: Option<mpsc::Sender<mpsc::Sender<io::Result<()>>>>,
}

struct Inner {
    folder: PathBuf,
    /// `[report] history`: older files are pruned, at open and hourly.
    history: Duration,
    days: Mutex<BTreeMap<Date, DayState>>,
    journals: Mutex<BTreeMap<Date, Journal>>,
    /// A write failed and was reported; reported again once one works.
    failing: AtomicBool,
}

#[derive(Default)]
struct DayState {
    counts: DayCounts,
    warned_full: bool,
}

/// A journal open for append: the policies its segment has declared.
struct Journal {
    file: File,
    policies: HashMap<Policy, u32>,
    dirty: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counting is worth more than a poisoned lock: the data is plain counts.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Store {
    /// Opens the store of `spool_dir` for the relay: compacts finished
    /// days, prunes beyond `history`, reloads today, starts the sync thread.
    pub fn open(spool_dir: &Path, history: Duration) -> io::Result<Store> {
        Self::open_at(spool_dir, history, SystemTime::now())
    }

    /// [`Store::open`] as if it were `now` (tests).
    pub fn open_at(spool_dir: &Path, history: Duration, now: SystemTime) -> io::Result<Store> {
        let folder = journal::folder(spool_dir);
        modes::create_folder(&folder)?;
        let today = journal::day_of(now);
        prune(&folder, today, history)?;
        let mut days = BTreeMap::new();
        for day in journal::days(&folder)? {
            if day < today {
                if let Err(e) = journal::compact(&folder, day) {
                    tracing::warn!(day = %journal::day_name(day), error = %e, "could not compact a day of transit records; its journal stays");
                }
                continue;
            }
            let read = journal::read_day(&folder, day)?;
            if read.torn_lines > 0 {
                tracing::warn!(day = %journal::day_name(day), lines = read.torn_lines, "transit journal: skipped lines that did not parse (torn by a crash)");
            }
            days.insert(
                day,
                DayState {
                    counts: read.counts,
                    warned_full: false,
                },
            );
        }
        let inner = Arc::new(Inner {
            folder,
            history,
            days: Mutex::new(days),
            journals: Mutex::new(BTreeMap::new()),
            failing: AtomicBool::new(false),
        });
        let (sender, receiver) = mpsc::channel::<mpsc::Sender<io::Result<()>>>();
        let weak = Arc::downgrade(&inner);
        let spawned = std::thread::Builder::new()
            .name("transit-sync".into())
            .spawn(move || {
                let mut pruned = std::time::Instant::now();
                loop {
                    let asked = match receiver.recv_timeout(SYNC_EVERY) {
                        Ok(done) => Some(done),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    };
                    let Some(inner) = weak.upgrade() else { break };
                    let synced = inner.sync();
                    if let Err(e) = &synced {
                        tracing::warn!(error = %e, "could not sync the transit journal");
                    }
                    if let Some(done) = asked {
                        let _ = done.send(synced);
                    }
                    if pruned.elapsed() >= PRUNE_EVERY {
                        pruned = std::time::Instant::now();
                        let today = journal::day_of(SystemTime::now());
                        if let Err(e) = prune(&inner.folder, today, inner.history) {
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

    /// Syncs every journal written to, now (the stop; tests).
    pub fn flush(&self) -> io::Result<()> {
        if let Some(sync) = &self.sync {
            let (done, wait) = mpsc::channel();
            if sync.send(done).is_ok() {
                if let Ok(result) = wait.recv() {
                    return result;
                }
            }
        }
        self.inner.sync()
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
        if let Err(e) = self.inner.append(day, &event) {
            if !self.inner.failing.swap(true, Ordering::Relaxed) {
                tracing::warn!(folder = %self.inner.folder.display(), error = %e, "could not write the transit journal: events are counted in memory only until a write works");
            }
        } else if self.inner.failing.swap(false, Ordering::Relaxed) {
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

    /// Writes the event's line (and its policy's, first time) to the
    /// day's journal: one `write(2)`, no sync.
    fn append(&self, day: Date, event: &Event) -> io::Result<()> {
        let mut journals = lock(&self.journals);
        if !journals.contains_key(&day) {
            let opened = open_journal(&self.folder, day)?;
            // Yesterday's may still get a late event; older ones are closed.
            let keep_from = day.saturating_sub(time::Duration::days(DAYS_IN_MEMORY - 1));
            journals.retain(|d, j| *d >= keep_from || j.dirty);
            journals.insert(day, opened);
        }
        let Some(journal) = journals.get_mut(&day) else {
            return Ok(());
        };
        let mut line = Vec::with_capacity(160);
        let number = match journal.policies.get(&event.policy) {
            Some(n) => *n,
            None => {
                let n = journal.policies.len() as u32;
                serde_json::to_writer(
                    &mut line,
                    &Line::Policy {
                        policy: n,
                        is: event.policy.clone(),
                    },
                )
                .map_err(io::Error::other)?;
                line.push(b'\n');
                n
            }
        };
        serde_json::to_writer(&mut line, &Line::Event(Compact::of(event, number)))
            .map_err(io::Error::other)?;
        line.push(b'\n');
        journal.file.write_all(&line)?;
        journal.dirty = true;
        // Declared only once written.
        journal
            .policies
            .entry(event.policy.clone())
            .or_insert(number);
        Ok(())
    }

    /// fsyncs the journals written since the last sync, outside the lock.
    fn sync(&self) -> io::Result<()> {
        let mut dirty = Vec::new();
        {
            let mut journals = lock(&self.journals);
            for journal in journals.values_mut().filter(|j| j.dirty) {
                dirty.push(journal.file.try_clone()?);
                journal.dirty = false;
            }
        }
        for file in dirty {
            file.sync_data()?;
        }
        Ok(())
    }
}

/// Opens the journal of `day` for append (0600), starting a new segment;
/// a torn last line of a crash is closed first so it spoils no new line.
fn open_journal(folder: &Path, day: Date) -> io::Result<Journal> {
    let path = journal::journal_path(folder, day);
    let mut file =
        modes::open_private(&path, File::options().read(true).append(true).create(true))?;
    let len = file.metadata()?.len();
    let mut head = Vec::new();
    if len > 0 {
        use std::io::{Read, Seek, SeekFrom};
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(len - 1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            head.push(b'\n');
        }
    }
    let segment = crate::random::u64();
    serde_json::to_writer(&mut head, &Line::Segment { segment }).map_err(io::Error::other)?;
    head.push(b'\n');
    file.write_all(&head)?;
    if len == 0 {
        // A new file: its name must survive a power cut too.
        File::open(folder)?.sync_all()?;
    }
    Ok(Journal {
        file,
        policies: HashMap::new(),
        dirty: true,
    })
}

/// Removes the files of days older than `history` before `today`.
fn prune(folder: &Path, today: Date, history: Duration) -> io::Result<()> {
    let keep = (history.as_secs().div_ceil(86_400)).max(1) as i64;
    let oldest = today.saturating_sub(time::Duration::days(keep - 1));
    for day in journal::days(folder)? {
        if day < oldest {
            for path in [
                journal::journal_path(folder, day),
                journal::compacted_path(folder, day),
            ] {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            tracing::info!(day = %journal::day_name(day), "transit records pruned ([report] history)");
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
