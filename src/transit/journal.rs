//! The files of `SPOOL_DIR/transit/` and how they are read.
//!
//! * `YYYY-MM-DD.jsonl`: the day's journal, appended one line per event
//!   by the running relay. It is made of segments: each opening for
//!   append writes a `{"segment":ID}` line, then declares each policy
//!   once (`{"policy":N,"is":{…}}`) before the events that name it by
//!   number, so a line stays short even for long TLSA or MTA-STS policies.
//! * `YYYY-MM-DD.json`: a finished day compacted to its counts, with the
//!   first segment id and length of the journal it was made from: if a
//!   crash left the journal beside it, that much of it is not counted twice.
//!
//! A line that does not parse (the torn end of a write cut by a crash) is
//! skipped and counted, never fatal. Reading takes no lock: the report
//! works while the relay appends.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::Date;

use super::aggregate::DayCounts;
use super::{Event, Failure, Method, Policy};

/// The folder under `spool_dir`.
pub const FOLDER: &str = "transit";

/// The layout version of the compacted day file.
const VERSION: u32 = 1;

pub fn folder(spool_dir: &Path) -> PathBuf {
    spool_dir.join(FOLDER)
}

const DAY_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// `YYYY-MM-DD`.
pub fn day_name(day: Date) -> String {
    day.format(DAY_FORMAT).unwrap_or_default()
}

/// The day of a `YYYY-MM-DD` text (a file name stem, `--day`).
pub fn parse_day(text: &str) -> Option<Date> {
    Date::parse(text, DAY_FORMAT).ok()
}

/// The UTC day of `at`.
pub fn day_of(at: std::time::SystemTime) -> Date {
    time::OffsetDateTime::from(at).date()
}

pub fn journal_path(folder: &Path, day: Date) -> PathBuf {
    folder.join(format!("{}.jsonl", day_name(day)))
}

pub fn compacted_path(folder: &Path, day: Date) -> PathBuf {
    folder.join(format!("{}.json", day_name(day)))
}

/// One journal line.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum Line {
    Segment { segment: u64 },
    Policy { policy: u32, is: Policy },
    Event(Compact),
}

/// An event without its time (the file is the day) and with its policy
/// by number: domain, policy, MX host, receiving IP, sending IP, method,
/// TLS version, failure, sessions, messages, deferred for policy.
#[derive(Serialize, Deserialize)]
pub(super) struct Compact(
    String,
    u32,
    String,
    Option<IpAddr>,
    Option<IpAddr>,
    Method,
    Option<String>,
    Option<Failure>,
    u32,
    u32,
    bool,
);

impl Compact {
    pub(super) fn of(event: &Event, policy: u32) -> Compact {
        Compact(
            event.domain.clone(),
            policy,
            event.mx_host.clone(),
            event.receiving_ip,
            event.sending_ip,
            event.method,
            event.tls_version.clone(),
            event.failure.clone(),
            event.sessions,
            event.messages,
            event.policy_deferred,
        )
    }

    fn into_event(self, policy: Policy) -> Event {
        Event {
            at: std::time::SystemTime::UNIX_EPOCH,
            domain: self.0,
            policy,
            mx_host: self.2,
            receiving_ip: self.3,
            sending_ip: self.4,
            method: self.5,
            tls_version: self.6,
            failure: self.7,
            sessions: self.8,
            messages: self.9,
            policy_deferred: self.10,
        }
    }
}

/// The compacted day file.
#[derive(Serialize, Deserialize)]
pub(super) struct Compacted {
    pub version: u32,
    /// The first segment of the journal this was made from, and how many
    /// of its bytes it counts.
    pub journal_segment: Option<u64>,
    pub journal_bytes: u64,
    pub counts: DayCounts,
}

/// A journal replayed.
#[derive(Default)]
pub struct Replayed {
    pub counts: DayCounts,
    /// Lines skipped because they did not parse (torn by a crash).
    pub torn_lines: usize,
    pub first_segment: Option<u64>,
    pub bytes: u64,
}

/// Replays the journal text `bytes`, counting the events that start at or
/// after byte `skip` (segment and policy lines before it still declare).
pub fn replay(bytes: &[u8], skip: u64) -> Replayed {
    let mut replayed = Replayed {
        bytes: bytes.len() as u64,
        ..Replayed::default()
    };
    let mut policies: Vec<Option<Policy>> = Vec::new();
    let mut at = 0u64;
    for line in bytes.split(|b| *b == b'\n') {
        let start = at;
        at += line.len() as u64 + 1;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Line>(line) {
            Ok(Line::Segment { segment }) => {
                replayed.first_segment.get_or_insert(segment);
                policies.clear();
            }
            Ok(Line::Policy { policy, is }) => {
                let n = policy as usize;
                if n < 1 << 20 {
                    if policies.len() <= n {
                        policies.resize(n + 1, None);
                    }
                    policies[n] = Some(is);
                }
            }
            Ok(Line::Event(compact)) => {
                if start < skip {
                    continue;
                }
                match policies.get(compact.1 as usize).cloned().flatten() {
                    Some(policy) => replayed.counts.add(&compact.into_event(policy)),
                    None => replayed.torn_lines += 1,
                }
            }
            Err(_) => replayed.torn_lines += 1,
        }
    }
    replayed
}

/// What one day's files hold together.
pub struct ReadDay {
    pub counts: DayCounts,
    pub torn_lines: usize,
    /// The journal's first segment and length, when there is one.
    pub journal: Option<(Option<u64>, u64)>,
}

/// Reads a day: its compacted file, plus whatever of its journal that
/// file does not already count. Missing files are an empty day.
pub fn read_day(folder: &Path, day: Date) -> io::Result<ReadDay> {
    let mut counts = DayCounts::default();
    let mut counted: Option<(Option<u64>, u64)> = None;
    match std::fs::read(compacted_path(folder, day)) {
        Ok(bytes) => {
            let compacted: Compacted = serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", compacted_path(folder, day).display()),
                )
            })?;
            if compacted.version == VERSION {
                counts = compacted.counts;
                counted = Some((compacted.journal_segment, compacted.journal_bytes));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let bytes = match std::fs::read(journal_path(folder, day)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(ReadDay {
                counts,
                torn_lines: 0,
                journal: None,
            })
        }
        Err(e) => return Err(e),
    };
    // Only the journal the compacted file was made from is skipped.
    let first = replay_first_segment(&bytes);
    let skip = match counted {
        Some((segment, bytes)) if segment.is_some() && segment == first => bytes,
        _ => 0,
    };
    let replayed = replay(&bytes, skip);
    counts.merge(replayed.counts);
    Ok(ReadDay {
        counts,
        torn_lines: replayed.torn_lines,
        journal: Some((replayed.first_segment, replayed.bytes)),
    })
}

fn replay_first_segment(bytes: &[u8]) -> Option<u64> {
    let first = bytes.split(|b| *b == b'\n').next()?;
    match serde_json::from_slice::<Line>(first) {
        Ok(Line::Segment { segment }) => Some(segment),
        _ => None,
    }
}

/// The days that have a file in `folder`, oldest first.
pub fn days(folder: &Path) -> io::Result<Vec<Date>> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut days = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        let stem = name
            .strip_suffix(".jsonl")
            .or_else(|| name.strip_suffix(".json"));
        if let Some(day) = stem.and_then(parse_day) {
            days.push(day);
        }
    }
    days.sort();
    days.dedup();
    Ok(days)
}

/// Every day from `from` to `to` (inclusive) that has records, read.
pub fn read_range(
    spool_dir: &Path,
    from: Date,
    to: Date,
) -> io::Result<std::collections::BTreeMap<Date, DayCounts>> {
    let folder = folder(spool_dir);
    let mut read = std::collections::BTreeMap::new();
    for day in days(&folder)? {
        if day >= from && day <= to {
            read.insert(day, read_day(&folder, day)?.counts);
        }
    }
    Ok(read)
}

/// Writes the compacted file of `day` from what was read of it, then
/// removes the journal (DESIGN §6: temp file, fsync, rename, fsync the
/// folder, so a crash leaves one or the other whole).
pub fn compact(folder: &Path, day: Date) -> io::Result<()> {
    let read = read_day(folder, day)?;
    let Some((segment, bytes)) = read.journal else {
        return Ok(());
    };
    let compacted = Compacted {
        version: VERSION,
        journal_segment: segment,
        journal_bytes: bytes,
        counts: read.counts,
    };
    let text = serde_json::to_vec(&compacted).map_err(io::Error::other)?;
    let target = compacted_path(folder, day);
    let temp = target.with_extension("json.tmp");
    {
        let mut file = crate::queue::modes::create_private(&temp)?;
        io::Write::write_all(&mut file, &text)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, &target)?;
    std::fs::File::open(folder)?.sync_all()?;
    std::fs::remove_file(journal_path(folder, day))?;
    Ok(())
}
