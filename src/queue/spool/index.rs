//! Where every message kept in a segment is, and how full of live
//! messages each segment still is (see "Segments" in [`spool`](super)).
//! Built by scanning the segments at start; kept up to date by commits
//! and removals; read by delivery and `tlsrelay queue`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{self, Bad, Kind};
use super::SpoolError;

/// Where one message's record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Loc {
    pub(super) segment: u32,
    pub(super) offset: u64,
    pub(super) len: u32,
}

/// How much of a segment is still in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Usage {
    /// Messages in it that are still queued.
    pub(super) live: u32,
    /// Their bytes.
    pub(super) live_bytes: u64,
    /// Every record's bytes, dead ones included.
    pub(super) bytes: u64,
}

/// The segments of a spool and the messages in them.
#[derive(Debug, Default)]
pub(super) struct Index {
    pub(super) messages: HashMap<String, Loc>,
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
    /// Every message's arrival, from its record.
    pub(super) arrivals: HashMap<String, i64>,
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
                    offset,
                    len: record.len as u32,
                };
                match record.kind {
                    Kind::Message => {
                        report.arrivals.insert(record.id.to_string(), record.time);
                        self.insert(record.id, loc);
                    }
                    Kind::Done => {
                        report.arrivals.remove(record.id);
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
        for (id, loc) in old.messages {
            self.messages.entry(id).or_insert(loc);
        }
        let numbers: Vec<u32> = old.segments.keys().copied().collect();
        self.segments.extend(old.segments);
        for n in numbers {
            self.check(n);
        }
    }

    /// A message committed (or copied) at `loc`; an older copy is dead.
    pub(super) fn insert(&mut self, id: &str, loc: Loc) {
        if let Some(old) = self.messages.insert(id.to_string(), loc) {
            self.forget(old);
        }
        let usage = self.segments.entry(loc.segment).or_default();
        usage.live += 1;
        usage.live_bytes += u64::from(loc.len);
    }

    /// Message `id` left the queue; where it was.
    pub(super) fn remove(&mut self, id: &str) -> Option<Loc> {
        let loc = self.messages.remove(id)?;
        self.forget(loc);
        Some(loc)
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

    fn forget(&mut self, loc: Loc) {
        if let Some(usage) = self.segments.get_mut(&loc.segment) {
            usage.live = usage.live.saturating_sub(1);
            usage.live_bytes = usage.live_bytes.saturating_sub(u64::from(loc.len));
        }
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
        let loc = *self.messages.get(id)?;
        let file = match self.files.get(&loc.segment) {
            Some(file) => file.clone(),
            None => match File::open(segment_path(folder, loc.segment)) {
                Ok(file) => {
                    let file = Arc::new(file);
                    self.files.insert(loc.segment, file.clone());
                    file
                }
                Err(e) => return Some(Err(e)),
            },
        };
        Some(Ok((loc, file)))
    }
}

/// What [`walk`] meets in a segment.
pub(super) enum Step<'a> {
    /// A whole, checked record at this offset.
    Record(u64, record::Record<'a>),
    /// Bytes at this offset that are no record, with a record after them.
    Damaged(u64, &'a [u8]),
    /// So many bytes at the end that were never a whole record.
    Torn(u64),
}

/// Every record of a segment's `bytes` in order, and what is not one.
pub(super) fn walk<'a>(bytes: &'a [u8], mut each: impl FnMut(Step<'a>)) {
    let mut at = 0;
    while at < bytes.len() {
        match record::parse(&bytes[at..]) {
            Ok(record) => {
                let len = record.len;
                each(Step::Record(at as u64, record));
                at += len;
            }
            Err(Bad::End) => return,
            Err(Bad::Short { .. }) | Err(Bad::Damaged(_)) => {
                let mut next = record::resync(bytes, at);
                while let Some(candidate) = next {
                    if record::parse(&bytes[candidate..]).is_ok() {
                        break;
                    }
                    next = record::resync(bytes, candidate);
                }
                match next {
                    Some(next) => {
                        each(Step::Damaged(at as u64, &bytes[at..next]));
                        at = next;
                    }
                    None => {
                        let rest = &bytes[at..];
                        let used = rest.len() - rest.iter().rev().take_while(|&&b| b == 0).count();
                        each(Step::Torn(used as u64));
                        return;
                    }
                }
            }
        }
    }
}

/// The bytes of the record at `loc` in `file`, as written (unchecked).
pub(super) fn read_raw(file: &File, loc: Loc) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; loc.len as usize];
    file.read_exact_at(&mut bytes, loc.offset)?;
    Ok(bytes)
}

fn read_whole(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::spool::record::message;

    #[test]
    fn done_records_remove_and_later_copies_win() {
        let mut segment = message("A", b"one");
        segment.extend(message("B", b"two"));
        segment.extend(record::done("A", 1));
        segment.extend(message("B", b"two again"));
        segment.extend([0; 64]);
        let mut index = Index::default();
        let mut report = ScanReport::default();
        index.take_in(1, &segment, &mut report);
        assert!(!index.messages.contains_key("A"));
        let b = index.messages["B"];
        assert_eq!(b.offset as usize, segment.len() - 64 - b.len as usize);
        let usage = index.segments[&1];
        assert_eq!(usage.live, 1);
        assert_eq!(usage.live_bytes, u64::from(b.len));
        assert_eq!((report.torn, report.damaged.len()), (0, 0));
        assert_eq!(report.arrivals.keys().collect::<Vec<_>>(), ["B"]);
    }

    #[test]
    fn damage_in_the_middle_is_skipped_and_reported_a_torn_tail_is_not_kept() {
        let first = message("A", b"one");
        let mut segment = first.clone();
        segment.extend(message("B", b"two"));
        let b_at = first.len();
        segment[b_at + 27] ^= 1; // B's payload: checksum fails
        segment.extend(message("C", b"three"));
        let whole = segment.len();
        segment.extend(&message("D", b"four")[..20]);
        let mut index = Index::default();
        let mut report = ScanReport::default();
        index.take_in(3, &segment, &mut report);
        let mut ids: Vec<_> = index.messages.keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, ["A", "C"]);
        assert_eq!(report.damaged.len(), 1);
        assert_eq!(report.damaged[0].1 as usize, b_at);
        // Counted up to its last byte that is not zero.
        assert!(report.torn > 0 && report.torn <= (segment.len() - whole) as u64);
    }
}
