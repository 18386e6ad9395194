//! The relay's side of the transit files: the journal segment each day
//! appends to, its group-commit sync, and its rotation (layout in
//! [`super::files`]).
//!
//! [`Writer::append`] is all `record` does on disk: one `write(2)` to the
//! day's open segment, under a short lock. Everything slower runs on the
//! store's sync thread: fsync ([`Writer::sync`]), and rotation
//! ([`Writer::rotate_due`]): once a segment is [`Rotation::bytes`] long
//! or [`Rotation::every`] old, the next segment is opened and appends go
//! there, then the closed segment is fsynced and folded with the older
//! ones into the day's snapshot, and removed. A finished day (before
//! today) is rotated and closed at the next tick; an event that comes late
//! for it opens a new segment, which the next tick folds in again: late
//! events are counted once, in their own day.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use time::Date;

use super::files;
use super::journal::{self, Compact, Line};
use super::{Event, Policy};
use crate::queue::modes;

/// When the open segment of a day is rotated into the snapshot.
#[derive(Clone, Copy, Debug)]
pub struct Rotation {
    /// Segment age (with something written).
    pub every: Duration,
    /// Segment length.
    pub bytes: u64,
}

impl Default for Rotation {
    /// Every minute or 8 MiB: at 1,000 events a second, a segment of
    /// about 6 MB, and a read of today replays at most that beside the
    /// snapshot.
    fn default() -> Rotation {
        Rotation {
            every: Duration::from_secs(60),
            bytes: 8 << 20,
        }
    }
}

pub(super) struct Writer {
    folder: PathBuf,
    rotation: Rotation,
    journals: Mutex<Journals>,
    /// One rotation at a time (the sync thread, a flush).
    rotating: Mutex<()>,
}

#[derive(Default)]
struct Journals {
    open: BTreeMap<Date, Journal>,
    /// The number the next segment of a day gets.
    next: BTreeMap<Date, u64>,
}

/// A segment open for append: the policies it has declared.
struct Journal {
    file: File,
    segment: u64,
    policies: HashMap<Policy, u32>,
    /// Written since the last sync.
    dirty: bool,
    /// Created since the last sync: the folder needs one too.
    new_name: bool,
    written: u64,
    opened: Instant,
    /// `append` already said it is due for rotation.
    said_due: bool,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counting is worth more than a poisoned lock: the data is plain counts.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Writer {
    pub(super) fn new(folder: PathBuf, rotation: Rotation) -> Writer {
        Writer {
            folder,
            rotation,
            journals: Mutex::new(Journals::default()),
            rotating: Mutex::new(()),
        }
    }

    /// Learns the next segment number of `day` from disk now (at open),
    /// so that its first `append` need not read the snapshot.
    pub(super) fn seed(&self, day: Date) -> io::Result<()> {
        let n = next_on_disk(&self.folder, day)?;
        lock(&self.journals).next.insert(day, n);
        Ok(())
    }

    /// Writes the event's line (and its policy's, first time in the
    /// segment) with one `write(2)`, no sync. `Ok(true)`: the segment just
    /// grew past [`Rotation::bytes`] (wake the sync thread).
    pub(super) fn append(&self, day: Date, event: &Event) -> io::Result<bool> {
        let mut journals = lock(&self.journals);
        let journals = &mut *journals;
        let journal = match journals.open.entry(day) {
            std::collections::btree_map::Entry::Occupied(open) => open.into_mut(),
            std::collections::btree_map::Entry::Vacant(vacant) => {
                // The first event of a day (or a late one): an open here,
                // and a look at the folder for a day not seeded.
                let n = match journals.next.get(&day) {
                    Some(n) => *n,
                    None => next_on_disk(&self.folder, day)?,
                };
                journals.next.insert(day, n + 1);
                vacant.insert(open_segment(&self.folder, day, n)?)
            }
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
        journal.written += line.len() as u64;
        // Declared only once written.
        journal
            .policies
            .entry(event.policy.clone())
            .or_insert(number);
        let due = !journal.said_due && journal.written >= self.rotation.bytes;
        journal.said_due |= due;
        Ok(due)
    }

    /// fsyncs the segments written since the last sync (and the folder
    /// for new ones), outside the lock.
    pub(super) fn sync(&self) -> io::Result<()> {
        let mut dirty = Vec::new();
        let mut new_name = false;
        {
            let mut journals = lock(&self.journals);
            for journal in journals.open.values_mut() {
                if journal.dirty {
                    dirty.push(journal.file.try_clone()?);
                    journal.dirty = false;
                }
                new_name |= std::mem::take(&mut journal.new_name);
            }
        }
        for file in dirty {
            file.sync_data()?;
        }
        if new_name {
            File::open(&self.folder)?.sync_all()?;
        }
        Ok(())
    }

    /// Rotates every segment that is due: long or old enough, or of a
    /// day before `today` (which is closed too).
    pub(super) fn rotate_due(&self, today: Date) -> io::Result<()> {
        let due: Vec<(Date, bool)> = {
            let mut journals = lock(&self.journals);
            let keep_from = today.saturating_sub(time::Duration::days(2));
            let Journals { open, next } = &mut *journals;
            next.retain(|day, _| *day >= keep_from || open.contains_key(day));
            open.iter()
                .filter(|(day, j)| {
                    **day < today
                        || j.written >= self.rotation.bytes
                        || (j.written > 0 && j.opened.elapsed() >= self.rotation.every)
                })
                .map(|(day, _)| (*day, *day < today))
                .collect()
        };
        let mut result = Ok(());
        for (day, close) in due {
            if let Err(e) = self.rotate(day, close) {
                tracing::warn!(day = %journal::day_name(day), error = %e, "could not rotate the transit journal; its segments stay and are read as they are");
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }

    /// Moves the appends of `day` to a new segment (or none: `close`),
    /// then folds the closed one and older into the day's snapshot.
    pub(super) fn rotate(&self, day: Date, close: bool) -> io::Result<()> {
        let _one = lock(&self.rotating);
        let (closed, bound) = {
            let mut journals = lock(&self.journals);
            let Some(current) = journals.open.get(&day) else {
                return Ok(());
            };
            let bound = current.segment + 1;
            let closed = match close {
                true => journals.open.remove(&day),
                false => {
                    let fresh = open_segment(&self.folder, day, bound)?;
                    journals.next.insert(day, bound + 1);
                    journals.open.insert(day, fresh)
                }
            };
            (closed, bound)
        };
        if let Some(closed) = closed {
            // Synced by no one else once out of the map.
            closed.file.sync_data()?;
        }
        let torn = files::compact(&self.folder, day, bound)?;
        if torn > 0 {
            tracing::warn!(day = %journal::day_name(day), lines = torn, "transit journal: skipped lines that did not parse (torn by a crash)");
        }
        Ok(())
    }
}

/// The number for a new segment of `day`: above every one on disk and
/// every one its snapshot counts, and never 0 (the first version's).
fn next_on_disk(folder: &std::path::Path, day: Date) -> io::Result<u64> {
    let above = files::segments(folder, day)?
        .last()
        .map_or(0, |last| last + 1);
    Ok(above.max(files::snapshot_next_segment(folder, day)?).max(1))
}

/// Creates segment `n` of `day` (0600; one that exists is not reused).
fn open_segment(folder: &std::path::Path, day: Date, n: u64) -> io::Result<Journal> {
    let path = files::segment_path(folder, day, n);
    let file = modes::open_private(&path, File::options().append(true).create_new(true))?;
    Ok(Journal {
        file,
        segment: n,
        policies: HashMap::new(),
        dirty: false,
        new_name: true,
        written: 0,
        opened: Instant::now(),
        said_due: false,
    })
}
