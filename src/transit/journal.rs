//! The lines of a journal segment (`SPOOL_DIR/transit/`, the files in
//! [`super::files`]), and the day names of the files.
//!
//! A segment declares each policy once (`{"policy":N,"is":{…}}`) before
//! the events that name it by number, so a line stays short even for long
//! TLSA or MTA-STS policies; then one line per event. The first version's
//! journal also held `{"segment":ID}` lines, each starting a new set of
//! policy numbers.
//!
//! A line that does not parse (the torn end of a write cut by a crash) is
//! skipped and counted, never fatal.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::Date;

use super::aggregate::DayCounts;
use super::{Event, Failure, Method, Policy};

/// The folder under `spool_dir`.
pub const FOLDER: &str = "transit";

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
/// TLS version, failure, sessions, messages, deferred for policy, then
/// REQUIRETLS messages delivered and returned. Those two are written only
/// when one is not 0, so the journal of unflagged mail reads the same to a
/// release before them, and a line without them (any earlier release's)
/// reads as 0 and 0.
#[derive(Deserialize)]
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
    #[serde(default)] u32,
    #[serde(default)] u32,
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
            event.requiretls_delivered,
            event.requiretls_returned,
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
            requiretls_delivered: self.11,
            requiretls_returned: self.12,
        }
    }
}

/// The JSON array of [`Compact`]: 11 elements, or 13 when the event
/// counts a message flagged REQUIRETLS.
impl Serialize for Compact {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let flagged = self.11 != 0 || self.12 != 0;
        let mut seq = serializer.serialize_seq(Some(if flagged { 13 } else { 11 }))?;
        seq.serialize_element(&self.0)?;
        seq.serialize_element(&self.1)?;
        seq.serialize_element(&self.2)?;
        seq.serialize_element(&self.3)?;
        seq.serialize_element(&self.4)?;
        seq.serialize_element(&self.5)?;
        seq.serialize_element(&self.6)?;
        seq.serialize_element(&self.7)?;
        seq.serialize_element(&self.8)?;
        seq.serialize_element(&self.9)?;
        seq.serialize_element(&self.10)?;
        if flagged {
            seq.serialize_element(&self.11)?;
            seq.serialize_element(&self.12)?;
        }
        seq.end()
    }
}

/// A segment replayed.
#[derive(Default)]
pub struct Replayed {
    pub counts: DayCounts,
    /// Lines skipped because they did not parse (torn by a crash).
    pub torn_lines: usize,
}

/// Replays the segment text `bytes`.
pub fn replay(bytes: &[u8]) -> Replayed {
    let mut replayed = Replayed::default();
    let mut policies: Vec<Option<Policy>> = Vec::new();
    for line in bytes.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Line>(line) {
            Ok(Line::Segment { .. }) => policies.clear(),
            Ok(Line::Policy { policy, is }) => {
                let n = policy as usize;
                if n < 1 << 20 {
                    if policies.len() <= n {
                        policies.resize(n + 1, None);
                    }
                    policies[n] = Some(is);
                }
            }
            Ok(Line::Event(compact)) => match policies.get(compact.1 as usize).cloned().flatten() {
                Some(policy) => replayed.counts.add(&compact.into_event(policy)),
                None => replayed.torn_lines += 1,
            },
            Err(_) => replayed.torn_lines += 1,
        }
    }
    replayed
}
