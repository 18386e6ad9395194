//! The files of one day in `SPOOL_DIR/transit/`, and how a day is read
//! and compacted so that neither the folder nor a read grows with the
//! number of events.
//!
//! * `YYYY-MM-DD.N.jsonl`: journal segment `N` (1, 2, …) of the day, the
//!   lines of [`super::journal`]. The relay appends to one segment at a
//!   time and starts the next one at each rotation (a number never used
//!   again for that day). `YYYY-MM-DD.jsonl`, the journal of the first
//!   version, is read as segment 0.
//! * `YYYY-MM-DD.json`: the day's snapshot: its counts and `next_segment`,
//!   the first segment it does *not* count. It counts every segment below,
//!   whole.
//!
//! A day's counts are its snapshot plus its segments from `next_segment`
//! on. [`compact`] folds the segments below a bound into a new snapshot
//! (temp file, fsync, rename, fsync the folder) and only then removes
//! them, so a crash at any step leaves files that count each event once:
//! before the rename the old snapshot and every segment are there; after
//! it the new snapshot skips the segments still left.
//!
//! Readers take no lock. A read that races a compaction notices (a
//! segment vanished, or the snapshot was replaced while it read) and
//! starts again, a bounded number of times.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::Date;

use super::aggregate::DayCounts;
use super::journal::{day_name, parse_day, replay};

/// The layout version of the snapshot (1: the first version's compacted
/// day, which counted the whole of the journal it was made from).
const VERSION: u32 = 2;

/// Reads of a day that may start again when they race compactions.
const READ_ATTEMPTS: usize = 20;

/// Segment `n` of `day`; 0 is the first version's journal.
pub fn segment_path(folder: &Path, day: Date, n: u64) -> PathBuf {
    match n {
        0 => folder.join(format!("{}.jsonl", day_name(day))),
        n => folder.join(format!("{}.{n}.jsonl", day_name(day))),
    }
}

pub fn snapshot_path(folder: &Path, day: Date) -> PathBuf {
    folder.join(format!("{}.json", day_name(day)))
}

/// What a file name in the folder is.
enum Name {
    Segment(Date, u64),
    Snapshot(Date),
}

fn parse_name(name: &str) -> Option<Name> {
    if let Some(stem) = name.strip_suffix(".jsonl") {
        return match stem.split_once('.') {
            None => parse_day(stem).map(|day| Name::Segment(day, 0)),
            Some((day, n)) => {
                let n = n.parse::<u64>().ok().filter(|n| *n > 0)?;
                parse_day(day).map(|day| Name::Segment(day, n))
            }
        };
    }
    name.strip_suffix(".json")
        .and_then(parse_day)
        .map(Name::Snapshot)
}

fn names(folder: &Path) -> io::Result<Vec<Name>> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        if let Some(name) = parse_name(&entry?.file_name().to_string_lossy()) {
            names.push(name);
        }
    }
    Ok(names)
}

/// The days that have a file in `folder`, oldest first.
pub fn days(folder: &Path) -> io::Result<Vec<Date>> {
    let mut days: Vec<Date> = names(folder)?
        .into_iter()
        .map(|name| match name {
            Name::Segment(day, _) | Name::Snapshot(day) => day,
        })
        .collect();
    days.sort();
    days.dedup();
    Ok(days)
}

/// The segments of `day` on disk, in order.
pub fn segments(folder: &Path, day: Date) -> io::Result<Vec<u64>> {
    let mut found: Vec<u64> = names(folder)?
        .into_iter()
        .filter_map(|name| match name {
            Name::Segment(d, n) if d == day => Some(n),
            _ => None,
        })
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// The snapshot file.
#[derive(Serialize, Deserialize)]
struct Snapshot<C> {
    version: u32,
    /// The first segment not counted (version 2).
    #[serde(default)]
    next_segment: u64,
    counts: C,
}

/// The snapshot of `day` and the file it was read from (kept open, so
/// its inode is not reused while a read checks it was not replaced).
fn read_snapshot(folder: &Path, day: Date) -> io::Result<Option<(File, u64, DayCounts)>> {
    let path = snapshot_path(folder, day);
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let snapshot: Snapshot<DayCounts> = serde_json::from_slice(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    let next = match snapshot.version {
        1 => 1,
        VERSION => snapshot.next_segment,
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: unknown version {other}", path.display()),
            ))
        }
    };
    Ok(Some((file, next, snapshot.counts)))
}

/// The first segment the snapshot of `day` does not count (0: none).
pub fn snapshot_next_segment(folder: &Path, day: Date) -> io::Result<u64> {
    let bytes = match std::fs::read(snapshot_path(folder, day)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    match serde_json::from_slice::<Snapshot<serde::de::IgnoredAny>>(&bytes) {
        Ok(snapshot) if snapshot.version == 1 => Ok(1),
        Ok(snapshot) => Ok(snapshot.next_segment),
        Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
    }
}

/// What one day's files hold together.
#[derive(Default)]
pub struct ReadDay {
    pub counts: DayCounts,
    /// Lines skipped because they did not parse (torn by a crash).
    pub torn_lines: usize,
    /// The segments counted beside the snapshot.
    pub segments: Vec<u64>,
}

/// Reads a day: its snapshot plus the segments it does not count.
/// Missing files are an empty day.
pub fn read_day(folder: &Path, day: Date) -> io::Result<ReadDay> {
    read_below(folder, day, u64::MAX)
}

/// [`read_day`], counting only the segments below `bound`.
fn read_below(folder: &Path, day: Date, bound: u64) -> io::Result<ReadDay> {
    for _ in 0..READ_ATTEMPTS {
        match read_once(folder, day, bound) {
            Ok(Some(read)) => return Ok(read),
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "the transit files of {} kept changing while read",
        day_name(day)
    )))
}

/// One read; `None` (or a vanished segment) when a compaction ran meanwhile.
fn read_once(folder: &Path, day: Date, bound: u64) -> io::Result<Option<ReadDay>> {
    let snapshot = read_snapshot(folder, day)?;
    let inode = match &snapshot {
        Some((file, _, _)) => Some(file.metadata()?.ino()),
        None => None,
    };
    let (next, counts) = match snapshot.as_ref() {
        Some((_, next, counts)) => (*next, counts.clone()),
        None => (0, DayCounts::default()),
    };
    let mut read = ReadDay {
        counts,
        ..ReadDay::default()
    };
    for n in segments(folder, day)? {
        if n < next || n >= bound {
            continue;
        }
        let replayed = replay(&std::fs::read(segment_path(folder, day, n))?);
        read.counts.merge(replayed.counts);
        read.torn_lines += replayed.torn_lines;
        read.segments.push(n);
    }
    let now = match std::fs::metadata(snapshot_path(folder, day)) {
        Ok(metadata) => Some(metadata.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    Ok((now == inode).then_some(read))
}

/// Every day from `from` to `to` (inclusive) that has records, read.
pub fn read_range(
    spool_dir: &Path,
    from: Date,
    to: Date,
) -> io::Result<std::collections::BTreeMap<Date, DayCounts>> {
    let folder = super::journal::folder(spool_dir);
    let mut read = std::collections::BTreeMap::new();
    for day in days(&folder)? {
        if day >= from && day <= to {
            read.insert(day, read_day(&folder, day)?.counts);
        }
    }
    Ok(read)
}

/// Folds the segments of `day` below `bound` (every one: `u64::MAX`)
/// into its snapshot, then removes them. Only the relay calls it, and
/// never for a segment still appended to. Returns the lines skipped.
pub fn compact(folder: &Path, day: Date, bound: u64) -> io::Result<usize> {
    let read = read_below(folder, day, bound)?;
    let next = match read.segments.last() {
        // Nothing new: what a crash left below the snapshot still goes.
        None => snapshot_next_segment(folder, day)?,
        Some(last) => {
            let next = match bound {
                u64::MAX => last + 1,
                bound => bound,
            };
            write_snapshot(folder, day, next, &read.counts)?;
            next
        }
    };
    for n in segments(folder, day)? {
        if n < next {
            remove(&segment_path(folder, day, n))?;
        }
    }
    Ok(read.torn_lines)
}

/// Writes the snapshot of `day` atomically (DESIGN §6), 0600.
pub(super) fn write_snapshot(
    folder: &Path,
    day: Date,
    next: u64,
    counts: &DayCounts,
) -> io::Result<()> {
    let snapshot = Snapshot {
        version: VERSION,
        next_segment: next,
        counts,
    };
    let text = serde_json::to_vec(&snapshot).map_err(io::Error::other)?;
    crate::queue::modes::replace_file(&snapshot_path(folder, day), &text)
}

/// Removes a file; one already gone is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes every file of `day` (pruning beyond `[report] history`).
pub fn remove_day(folder: &Path, day: Date) -> io::Result<()> {
    for n in segments(folder, day)? {
        remove(&segment_path(folder, day, n))?;
    }
    remove(&snapshot_path(folder, day).with_extension("json.tmp"))?;
    remove(&snapshot_path(folder, day))
}
