//! Reclaiming segments (see "Segments" in [`spool`](super::super)):
//! between batches the committer removes segments with nothing live left
//! and compacts those mostly dead, copying what still counts to the
//! active segment.
//!
//! Three rules keep the disk close to what the queue holds:
//! * a closed segment whose live records fill less than a quarter of it
//!   is compacted ([`Index::worth_reclaiming`]);
//! * when the closed segments' dead bytes pass half of the spool's live
//!   bytes plus one segment ([`Index::overfull`]), the one with the most
//!   dead bytes is compacted, even if more than a quarter of it is live
//!   (a queue whose states are rewritten at every retry, or whose
//!   segments all stay just above a quarter live, would otherwise hold
//!   up to four times its live bytes);
//! * the active segment itself is retired (closed, then reclaimed like
//!   any other) once it is worth reclaiming and the relay is idle
//!   ([`IDLE`]), is flushed (as at a stop), or the spool closes: a queue
//!   that empties leaves no
//!   segment full of delivered mail behind. Done records that must
//!   outlive it (their message's segment is still on disk) are copied to
//!   a new segment; that segment is retired again only after at least as
//!   much else has been written to it, so the same records are not
//!   copied at every pause. (Live records copied in need no such rule:
//!   a segment is retired only once they fill less than a quarter of it.)

use std::io;
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use super::{gone, lock, put, Committer, Job, SEGMENT_SIZE};
use crate::queue::spool::index::{read_raw, segment_path, Index, Loc, Usage};
use crate::queue::spool::record::{self, Kind};
use crate::queue::spool::window::{each_record, WINDOW};

/// With no record for this long, the active segment is retired when it
/// is worth reclaiming (see the module's doc)...
const IDLE: Duration = Duration::from_secs(1);
/// ... and this much has been written to it: a relay that gets a message
/// now and then would otherwise start a segment (and sync the folder for
/// it) for every one. A stop retires it whatever its size.
const IDLE_LEAST: u64 = 1 << 20;

impl Committer {
    /// The next job: a done record waiting in [`Later`], or what comes
    /// within [`IDLE`] (a record pushed meanwhile wakes it); after that
    /// the active segment is retired if it is worth it, and it waits on.
    /// `None` once every sender is gone and no record waits.
    pub(super) fn next_job(&mut self, jobs: &Receiver<Job>) -> Option<Job> {
        let waited = match self.later.sleep(|| jobs.recv_timeout(IDLE)) {
            Ok(record) => return Some(record),
            Err(waited) => waited,
        };
        match waited {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Disconnected) => self.later.first(),
            Err(RecvTimeoutError::Timeout) => {
                self.retire(IDLE_LEAST);
                match self.later.sleep(|| jobs.recv()) {
                    Ok(record) | Err(Ok(record)) => Some(record),
                    Err(Err(_)) => self.later.first(),
                }
            }
        }
    }

    /// Reclaims every segment queued for it (see [`Index::worth_reclaiming`]),
    /// then at most one more while the spool is overfull (see
    /// [`Index::overfull`]): one per batch, so no batch waits for more
    /// than one segment's copy.
    pub(super) fn reclaim(&mut self) {
        loop {
            let index = self.index.clone();
            let mut index = lock(&index);
            let Some(n) = index.reclaim.pop_first() else {
                break;
            };
            if !index.worth_reclaiming(n) {
                continue;
            }
            self.reclaim_logged(n, &mut index);
        }
        let index = self.index.clone();
        let mut index = lock(&index);
        if let Some(n) = index.overfull(SEGMENT_SIZE) {
            self.reclaim_logged(n, &mut index);
        }
    }

    /// Retires the active segment when it is worth reclaiming and more
    /// has been written to it than the done records copied in, and at
    /// least `least` bytes (see the module's doc):
    /// it is closed (trimmed of the space allocated ahead) and reclaimed;
    /// the next record starts a new segment.
    pub(super) fn retire(&mut self, least: u64) {
        let index = self.index.clone();
        let mut index = lock(&index);
        let Some(n) = self.active.as_ref().filter(|a| !a.broken).map(|a| a.number) else {
            return;
        };
        let Some(usage) = index.segments.get(&n).copied() else {
            return;
        };
        let written = usage.bytes.saturating_sub(usage.carried);
        let mostly_dead = usage.live == 0 || usage.live_bytes * 4 < usage.bytes;
        if written == 0 || written < usage.carried.max(least) || !mostly_dead {
            return;
        }
        self.close(&mut index);
        index.reclaim.remove(&n);
        self.reclaim_logged(n, &mut index);
    }

    fn reclaim_logged(&mut self, n: u32, index: &mut Index) {
        let started = std::time::Instant::now();
        match self.reclaim_one(n, index) {
            Ok(moved) => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                tracing::debug!(segment = n, moved, ms, "spool segment reclaimed");
            }
            Err(e) => {
                tracing::warn!(segment = n, error = %e, "could not reclaim a spool segment; it is tried again when more of it is done");
            }
        }
    }

    /// Copies what still counts in segment `n` (its live messages, the
    /// latest states, and done records about messages in older segments
    /// that still exist) to the active segment, synced, then removes `n`.
    /// A message's latest state goes along even from another segment, so
    /// that a scan still meets it after the message. The index stays
    /// locked throughout, so no message is removed or read in between.
    fn reclaim_one(&mut self, n: u32, index: &mut Index) -> io::Result<usize> {
        let path = segment_path(&self.folder, n);
        let file = std::fs::File::open(&path)?;
        let mut out = Vec::new();
        let mut copies = Vec::new();
        let mut done_bytes = 0;
        let mut failed = None;
        each_record(&file, WINDOW, |offset, record, raw| {
            let here = Loc {
                segment: n,
                offset: offset as u32,
                len: record.len as u32,
            };
            let keep = match record.kind {
                Kind::Message => index.message(record.id).map(|e| e.message) == Some(here),
                Kind::State => index.state_of(record.id) == Some(here),
                Kind::Done => record.target != n && index.segments.contains_key(&record.target),
            };
            if !keep {
                return;
            }
            match record.kind {
                Kind::Done => done_bytes += record.len as u64,
                _ => copies.push((record.kind, record.id.to_string(), out.len(), here.len)),
            }
            out.extend_from_slice(raw);
            let elsewhere = match record.kind {
                Kind::Message => index.state_of(record.id).filter(|s| s.segment != n),
                Kind::State | Kind::Done => None,
            };
            if let Some(state) = elsewhere {
                match read_state(&self.folder, index, record.id, state) {
                    Ok(state_bytes) => {
                        copies.push((Kind::State, record.id.to_string(), out.len(), state.len));
                        out.extend_from_slice(&state_bytes);
                    }
                    Err(e) => failed = Some(e),
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if !out.is_empty() {
            self.make_room(out.len() as u64, index)?;
            let active = self.active.as_mut().ok_or_else(gone)?;
            let start = put(active, &out, true)?;
            let segment = active.number;
            for (kind, id, at, len) in &copies {
                let loc = Loc {
                    segment,
                    offset: (start + *at as u64) as u32,
                    len: *len,
                };
                match kind {
                    Kind::Message => index.insert(id, loc),
                    Kind::State | Kind::Done => index.set_state(id, loc),
                }
            }
            if let Some(usage) = index.segments.get_mut(&segment) {
                usage.bytes += out.len() as u64;
                usage.carried += done_bytes;
            }
        }
        std::fs::remove_file(&path)?;
        index.drop_segment(n);
        Ok(copies.iter().filter(|c| c.0 == Kind::Message).count())
    }
}

/// The bytes of the state record of message `id` at `loc`, checked.
fn read_state(folder: &Path, index: &mut Index, id: &str, loc: Loc) -> io::Result<Vec<u8>> {
    let bytes = read_raw(&*index.file(folder, loc.segment)?, loc)?;
    match record::parse(&bytes) {
        Ok(r) if r.kind == Kind::State && r.id == id => Ok(bytes),
        _ => Err(io::Error::other(format!(
            "the state record of {id} in segment {} at offset {} does not check",
            loc.segment, loc.offset
        ))),
    }
}

impl Index {
    /// The closed segment to compact when the closed segments' dead bytes
    /// (done records included) pass half of the live bytes of the whole
    /// spool plus `slack`: the one with the most dead bytes. Then the
    /// spool stays within 1.5 times its live bytes, plus `slack` and the
    /// active segment. A segment chosen is at least a third dead on
    /// average (dead above half of live), so its copy costs at most twice
    /// the space it frees.
    pub(super) fn overfull(&self, slack: u64) -> Option<u32> {
        let live: u64 = self.segments.values().map(|u| u.live_bytes).sum();
        let closed = self
            .segments
            .iter()
            .filter(|(&n, _)| Some(n) != self.active);
        let dead = |u: &Usage| u.bytes.saturating_sub(u.live_bytes);
        let total: u64 = closed.clone().map(|(_, u)| dead(u)).sum();
        if total <= live / 2 + slack {
            return None;
        }
        closed
            .max_by_key(|(&n, u)| (dead(u), std::cmp::Reverse(n)))
            .filter(|(_, u)| dead(u) > 0)
            .map(|(&n, _)| n)
    }
}

#[cfg(test)]
#[path = "reclaim_tests.rs"]
mod tests;
