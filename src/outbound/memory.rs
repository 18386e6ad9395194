//! Broken-TLS memory (DESIGN.md §5): the rungs of the opportunistic
//! ladder that keep failing with a server, so that later messages need
//! not fail them again, without ever becoming a downgrade tool.
//!
//! An attacker who can break one handshake must not buy plaintext for a
//! day with it. So a rung is remembered as broken for a server only
//! after it failed on at least [`CONFIRM_FAILURES`] attempts spread over
//! at least [`CONFIRM_SPREAD`] seconds; a remembered rung is still tried
//! first once every [`RETRY_EVERY`] seconds; any success on it forgets it;
//! an entry lives at most `[delivery] broken_tls_memory` from its first
//! failure; and only `opportunistic` asks ([`policy::memory_applies`]).
//!
//! This module is the rule, as pure functions of the time passed in (so
//! the thresholds are table-tested); [`TlsMemory`] keeps it in a file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::policy::{self, Remembered, Rung, Start};
use crate::config::values::TlsLevel;

pub use super::memory_file::{Clock, TlsMemory};

/// Failed attempts before a rung is remembered as broken.
pub const CONFIRM_FAILURES: u32 = 3;
/// Seconds between the first and the last of them, at least.
pub const CONFIRM_SPREAD: i64 = 30 * 60;
/// A remembered rung is tried first again after this many seconds.
pub const RETRY_EVERY: i64 = 60 * 60;

/// What is known of one rung of one server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `IP:port`, as connected to.
    pub server: String,
    /// The MX or smarthost name it was reached as (for the administrator).
    pub host: String,
    pub rung: Rung,
    /// Attempts that failed on this rung.
    pub failures: u32,
    /// Unix seconds of the first and the last failure.
    pub first_failure: i64,
    pub last_failure: i64,
    /// Unix seconds the rung was last tried (a failure or an hourly retry).
    pub last_tried: i64,
    /// Unix seconds the entry is dropped: first failure plus the lifetime.
    pub until: i64,
}

impl Entry {
    /// Remembered as broken: enough failures, spread over enough time.
    pub fn confirmed(&self) -> bool {
        self.failures >= CONFIRM_FAILURES
            && self.last_failure - self.first_failure >= CONFIRM_SPREAD
    }

    /// In words, for `tlsrelay tls-memory list`.
    pub fn state(&self, now: i64) -> &'static str {
        match self.remembered(now) {
            Remembered::No if self.until <= now => "expired",
            Remembered::No => "counting",
            Remembered::Broken => "broken",
            Remembered::RetryDue => "retry due",
        }
    }

    fn remembered(&self, now: i64) -> Remembered {
        match (self.until > now && self.confirmed(), now - self.last_tried) {
            (false, _) => Remembered::No,
            (true, idle) if idle >= RETRY_EVERY => Remembered::RetryDue,
            (true, _) => Remembered::Broken,
        }
    }
}

/// Every entry, by server and rung. Each method takes the time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Book {
    entries: BTreeMap<(String, Rung), Entry>,
}

impl Book {
    pub fn from_entries(entries: Vec<Entry>) -> Book {
        Book {
            entries: entries
                .into_iter()
                .map(|e| ((e.server.clone(), e.rung), e))
                .collect(),
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Where the ladder to `server` starts under `level`. With `claim`, a
    /// due hourly retry is taken (the next attempts skip the rung again
    /// for an hour); without, nothing changes (`probe`).
    pub fn start(
        &mut self,
        level: TlsLevel,
        fallback: bool,
        server: &str,
        now: i64,
        claim: bool,
    ) -> Start {
        let start = policy::first_rung(level, fallback, |rung| {
            self.entries
                .get(&(server.to_string(), rung))
                .map_or(Remembered::No, |e| e.remembered(now))
        });
        if let (Some(rung), true) = (start.retried, claim) {
            if let Some(entry) = self.entries.get_mut(&(server.to_string(), rung)) {
                entry.last_tried = now;
            }
        }
        start
    }

    /// `rung` failed with `server` under `level`. A lifetime of zero turns
    /// the memory off. True when it was recorded.
    pub fn failed(
        &mut self,
        level: TlsLevel,
        server: &str,
        host: &str,
        rung: Rung,
        now: i64,
        lifetime: i64,
    ) -> bool {
        if !policy::memory_applies(level) || rung == Rung::Plaintext || lifetime <= 0 {
            return false;
        }
        let key = (server.to_string(), rung);
        match self.entries.get_mut(&key) {
            Some(entry) if entry.until > now => {
                entry.failures = entry.failures.saturating_add(1);
                entry.last_failure = now;
                entry.last_tried = now;
            }
            _ => {
                let entry = Entry {
                    server: server.to_string(),
                    host: host.to_string(),
                    rung,
                    failures: 1,
                    first_failure: now,
                    last_failure: now,
                    last_tried: now,
                    until: now.saturating_add(lifetime),
                };
                self.entries.insert(key, entry);
            }
        }
        true
    }

    /// TLS worked with `server` on `rung`: that rung, and the lower TLS
    /// rung, are forgotten, whatever the level. True when anything was.
    pub fn succeeded(&mut self, server: &str, rung: Rung) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|(s, r), _| s != server || *r < rung || *r == Rung::Plaintext);
        self.entries.len() != before
    }

    /// Drops what has lived its time. True when anything was.
    pub fn expire(&mut self, now: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.until > now);
        self.entries.len() != before
    }

    /// Forgets `host` (an MX or smarthost name, an IP, or `IP:port`), or
    /// everything with `None`; how many entries went.
    pub fn forget(&mut self, host: Option<&str>) -> usize {
        let before = self.entries.len();
        match host {
            None => self.entries.clear(),
            Some(host) => self.entries.retain(|_, e| !names(e, host)),
        }
        before - self.entries.len()
    }
}

/// `entry` is about `host`: its name, its IP or its `IP:port`.
fn names(entry: &Entry, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let ip = entry
        .server
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string());
    entry.host.eq_ignore_ascii_case(host) || entry.server == host || ip.is_ok_and(|ip| ip == host)
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
