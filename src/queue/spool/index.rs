//! Where every message kept in a segment is, where the latest delivery
//! state of every queued message is, and how full of live records each
//! segment still is (see "Segments" in [`spool`](super)). Built by
//! scanning the segments at start; kept up to date by commits, saves and
//! removals; read by delivery and `tlsrelay queue`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{self, Kind, Summary};
pub(super) use super::record::{walk, Step};
use super::SpoolError;
use crate::queue::qid::{IdMap, Qid};

/// Where one record is. A segment stays far below 4 GiB (see
/// `committer::SEGMENT_SIZE`), so an offset fits in 32 bits: twelve bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Loc {
    pub(super) segment: u32,
    pub(super) offset: u32,
    pub(super) len: u32,
}

/// A message kept in a segment: where its record is, and its latest
/// state record (none before its first attempt). 24 bytes: no record is
/// empty, so a state of length 0 stands for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) message: Loc,
    state: Loc,
}

impl Entry {
    fn new(message: Loc) -> Entry {
        let none = Loc {
            segment: 0,
            offset: 0,
            len: 0,
        };
        Entry {
            message,
            state: none,
        }
    }

    /// Where the latest state record is.
    pub(super) fn state(&self) -> Option<Loc> {
        Some(self.state).filter(|s| s.len > 0)
    }

    /// The latest state record is at `loc`; where the one before was.
    fn replace_state(&mut self, loc: Loc) -> Option<Loc> {
        let old = self.state();
        self.state = loc;
        old
    }
}

/// How much of a segment is still in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Usage {
    /// Records in it that still count: messages still queued, and the
    /// latest state of each.
    pub(super) live: u32,
    /// Their bytes.
    pub(super) live_bytes: u64,
    /// Every record's bytes, dead ones included.
    pub(super) bytes: u64,
    /// Of those, the bytes of done records copied in from segments
    /// reclaimed (see `committer::reclaim`: an active segment holding
    /// mostly such copies is not retired again).
    pub(super) carried: u64,
}

/// The segments of a spool and the records in them that count.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// Every message kept in a segment ([`IdMap`]: 36 bytes each).
    messages: IdMap<Entry>,
    /// The latest state records of messages kept in files of their own
    /// (`queue/`, past the memory limit: few). A scan cannot tell such a
    /// state from one of a message gone (its record never meets a done
    /// record), so recovery keeps only those whose file is there
    /// ([`Index::retain_file_states`]).
    pub(super) file_states: HashMap<String, Loc>,
    /// States handed to the committer and not written yet, with the
    /// number of their save: a load right after a save finds it here.
    pub(super) unwritten: HashMap<String, (u64, Vec<u8>)>,
    /// The number of the next save.
    saves: u64,
    pub(super) segments: BTreeMap<u32, Usage>,
    /// Open segment files, so that a read needs no `open`; a segment
    /// removed while a reader holds its file stays readable to it.
    files: HashMap<u32, Arc<File>>,
    /// The segment being written; never reclaimed.
    pub(super) active: Option<u32>,
    /// Segments to reclaim: all dead, or mostly (see [`Index::worth_reclaiming`]).
    pub(super) reclaim: BTreeSet<u32>,
    /// Batches written (and synced, when they held a message) by this run.
    pub(super) batches: u64,
}

/// What a scan found besides messages: bytes it could not read.
#[derive(Debug, Default)]
pub(super) struct ScanReport {
    /// Damaged stretches in the middle of a segment: (segment, offset, bytes).
    pub(super) damaged: Vec<(u32, u64, Vec<u8>)>,
    /// Bytes at the end of segments that were never a whole record (a
    /// batch a crash interrupted: never acknowledged).
    pub(super) torn: u64,
    /// Every message's arrival and what its latest state record's head
    /// says (see [`Found`]).
    pub(super) found: IdMap<Found>,
}

/// What the records of a message in a segment say about it, without
/// reading its state's JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Found {
    /// Unix time of its commit.
    pub(super) arrived: i64,
    /// Its latest state's summary: due at once without a state; `None`
    /// when the state record has none (written by an earlier release),
    /// and then the JSON must be read.
    pub(super) summary: Option<Summary>,
}

/// The path of segment `n` in `folder`.
pub(super) fn segment_path(folder: &Path, n: u32) -> PathBuf {
    folder.join(format!("{n:010}.seg"))
}

/// The numbers of the segments in `folder`, oldest first.
pub(super) fn segment_numbers(folder: &Path) -> io::Result<Vec<u32>> {
    let mut numbers = Vec::new();
    let entries = match fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(numbers),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
            numbers.push(n);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

impl Index {
    /// Reads every segment in `folder` numbered below `below`, oldest
    /// first, into the index. A segment removed meanwhile (a running relay
    /// reclaimed it) is skipped.
    pub(super) fn scan(&mut self, folder: &Path, below: u32) -> Result<ScanReport, SpoolError> {
        let mut report = ScanReport::default();
        let numbers = segment_numbers(folder).map_err(|source| SpoolError::Folder {
            path: folder.to_path_buf(),
            source,
        })?;
        for n in numbers.into_iter().filter(|&n| n < below) {
            let path = segment_path(folder, n);
            let bytes = match read_whole(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(SpoolError::File { path, source }),
            };
            self.take_in(n, &bytes, &mut report);
        }
        Ok(report)
    }

    /// The records of segment `n` (its bytes), in order.
    pub(super) fn take_in(&mut self, n: u32, bytes: &[u8], report: &mut ScanReport) {
        self.segments.entry(n).or_default();
        walk(bytes, |step| match step {
            Step::Record(offset, record) => {
                let loc = Loc {
                    segment: n,
                    offset: offset as u32,
                    len: record.len as u32,
                };
                let id = Qid::of(record.id);
                match record.kind {
                    Kind::Message => {
                        let first = Found {
                            arrived: record.time,
                            summary: Some(Summary::default()),
                        };
                        let found = report.found.get(id).map_or(first, |&old| Found {
                            arrived: record.time,
                            ..old
                        });
                        report.found.insert(id, found);
                        self.insert(record.id, loc);
                    }
                    Kind::State => {
                        if let Some(found) = report.found.get_mut(id) {
                            found.summary = record::summary(&record);
                        }
                        self.set_state(record.id, loc);
                    }
                    Kind::Done => {
                        report.found.remove(id);
                        self.remove(record.id);
                    }
                }
                if let Some(usage) = self.segments.get_mut(&n) {
                    usage.bytes += record.len as u64;
                }
            }
            Step::Damaged(offset, damaged) => report.damaged.push((n, offset, damaged.to_vec())),
            Step::Torn(len) => report.torn += len,
        });
    }

    /// Takes in what a scan of older segments found (recovery, while this
    /// run already writes its own), and queues those worth reclaiming.
    pub(super) fn merge(&mut self, old: Index) {
        let new: Vec<_> = old
            .messages
            .iter()
            .filter(|(id, _)| !self.messages.contains(*id))
            .map(|(id, entry)| (id, *entry))
            .collect();
        self.messages.extend(new);
        for (id, loc) in old.file_states {
            self.file_states.entry(id).or_insert(loc);
        }
        let numbers: Vec<u32> = old.segments.keys().copied().collect();
        self.segments.extend(old.segments);
        for n in numbers {
            self.check(n);
        }
    }

    /// A message committed (or copied) at `loc`; an older copy is dead,
    /// its state stays (a copy is the same message).
    pub(super) fn insert(&mut self, id: &str, loc: Loc) {
        let key = Qid::of(id);
        let old = match self.messages.get_mut(key) {
            Some(entry) => Some(std::mem::replace(&mut entry.message, loc)),
            None => {
                self.messages.insert(key, Entry::new(loc));
                None
            }
        };
        self.count(loc);
        if let Some(old) = old {
            self.forget(old);
        }
    }

    /// The latest state of message `id` is the record at `loc`; the one
    /// before it is dead.
    pub(super) fn set_state(&mut self, id: &str, loc: Loc) {
        let old = match self.messages.get_mut(Qid::of(id)) {
            Some(entry) => entry.replace_state(loc),
            None => self.file_states.insert(id.to_string(), loc),
        };
        self.count(loc);
        if let Some(old) = old {
            self.forget(old);
        }
    }

    /// The entry of message `id`, when it is kept in a segment.
    pub(super) fn message(&self, id: &str) -> Option<Entry> {
        self.messages.get(Qid::of(id)).copied()
    }

    /// True when message `id` is kept in a segment.
    pub(super) fn contains(&self, id: &str) -> bool {
        self.messages.contains(Qid::of(id))
    }

    /// The ids of the messages kept in segments.
    pub(super) fn ids(&self) -> impl Iterator<Item = String> + '_ {
        self.messages.iter().map(|(id, _)| id.to_string())
    }

    /// Where the latest state record of message `id` is.
    pub(super) fn state_of(&self, id: &str) -> Option<Loc> {
        match self.messages.get(Qid::of(id)) {
            Some(entry) => entry.state(),
            None => self.file_states.get(id).copied(),
        }
    }

    /// A state of message `id` is handed to the committer: the number of
    /// this save.
    pub(super) fn state_saved(&mut self, id: &str, json: Vec<u8>) -> u64 {
        self.saves += 1;
        self.unwritten.insert(id.to_string(), (self.saves, json));
        self.saves
    }

    /// Save number `save` of message `id` is written at `loc`. It counts
    /// only while the message is queued: a removal since dropped the
    /// unwritten state, and then the record is dead from the start.
    pub(super) fn state_written(&mut self, id: &str, save: u64, loc: Loc) {
        let Some(&(latest, _)) = self.unwritten.get(id) else {
            return;
        };
        if latest == save {
            self.unwritten.remove(id);
        }
        self.set_state(id, loc);
    }

    /// Save number `save` of message `id` could not be written.
    pub(super) fn state_lost(&mut self, id: &str, save: u64) {
        if self
            .unwritten
            .get(id)
            .is_some_and(|&(latest, _)| latest == save)
        {
            self.unwritten.remove(id);
        }
    }

    /// Message `id` left the queue: it and its state are dead. Returns
    /// where the message was, when in a segment.
    pub(super) fn remove(&mut self, id: &str) -> Option<Loc> {
        self.unwritten.remove(id);
        if let Some(state) = self.file_states.remove(id) {
            self.forget(state);
        }
        let entry = self.messages.remove(Qid::of(id))?;
        self.forget(entry.message);
        if let Some(state) = entry.state() {
            self.forget(state);
        }
        Some(entry.message)
    }

    /// Keeps the states of messages in files only where `queued` says the
    /// message is still there (see [`Index::file_states`]).
    pub(super) fn retain_file_states(&mut self, queued: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self
            .file_states
            .keys()
            .filter(|id| !queued(id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(loc) = self.file_states.remove(&id) {
                self.forget(loc);
            }
        }
    }

    /// True when segment `n` should be reclaimed: not the one being
    /// written, and no live message in it, or live messages in less than a
    /// quarter of its bytes (copying them costs at most a third of the
    /// space it frees).
    pub(super) fn worth_reclaiming(&self, n: u32) -> bool {
        let Some(usage) = self.segments.get(&n) else {
            return false;
        };
        self.active != Some(n) && (usage.live == 0 || usage.live_bytes * 4 < usage.bytes)
    }

    /// Queues segment `n` for reclaiming when it is worth it.
    pub(super) fn check(&mut self, n: u32) {
        if self.worth_reclaiming(n) {
            self.reclaim.insert(n);
        }
    }

    fn count(&mut self, loc: Loc) {
        let usage = self.segments.entry(loc.segment).or_default();
        usage.live += 1;
        usage.live_bytes += u64::from(loc.len);
    }

    /// The record at `loc` no longer counts; its segment may be worth
    /// reclaiming now.
    fn forget(&mut self, loc: Loc) {
        if let Some(usage) = self.segments.get_mut(&loc.segment) {
            usage.live = usage.live.saturating_sub(1);
            usage.live_bytes = usage.live_bytes.saturating_sub(u64::from(loc.len));
        }
        self.check(loc.segment);
    }

    /// Segment `n` is gone from the disk.
    pub(super) fn drop_segment(&mut self, n: u32) {
        self.segments.remove(&n);
        self.files.remove(&n);
    }

    /// Where message `id` is, and its segment's file opened.
    pub(super) fn locate(
        &mut self,
        folder: &Path,
        id: &str,
    ) -> Option<io::Result<(Loc, Arc<File>)>> {
        let loc = self.messages.get(Qid::of(id))?.message;
        Some(self.file(folder, loc.segment).map(|file| (loc, file)))
    }

    /// Where the latest state record of message `id` is, and its
    /// segment's file opened.
    pub(super) fn locate_state(
        &mut self,
        folder: &Path,
        id: &str,
    ) -> Option<io::Result<(Loc, Arc<File>)>> {
        let loc = self.state_of(id)?;
        Some(self.file(folder, loc.segment).map(|file| (loc, file)))
    }

    /// Segment `n`'s file, opened once.
    pub(super) fn file(&mut self, folder: &Path, n: u32) -> io::Result<Arc<File>> {
        if let Some(file) = self.files.get(&n) {
            return Ok(file.clone());
        }
        let file = Arc::new(File::open(segment_path(folder, n))?);
        self.files.insert(n, file.clone());
        Ok(file)
    }
}

/// The bytes of the record at `loc` in `file`, as written (unchecked).
pub(super) fn read_raw(file: &File, loc: Loc) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; loc.len as usize];
    file.read_exact_at(&mut bytes, u64::from(loc.offset))?;
    Ok(bytes)
}

fn read_whole(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
