//! Reclaiming segments (see "Segments" in [`spool`](super::super)):
//! between batches the committer removes segments with nothing live left
//! and compacts those mostly dead, copying what still counts to the
//! active segment.

use std::io;
use std::path::Path;

use super::{gone, lock, put, Committer};
use crate::queue::spool::index::{read_raw, segment_path, walk, Index, Loc, Step};
use crate::queue::spool::record::{self, Kind};

impl Committer {
    /// Reclaims every segment queued for it (see [`Index::worth_reclaiming`]).
    pub(super) fn reclaim(&mut self) {
        loop {
            let index = self.index.clone();
            let mut index = lock(&index);
            let Some(n) = index.reclaim.pop_first() else {
                return;
            };
            if !index.worth_reclaiming(n) {
                continue;
            }
            match self.reclaim_one(n, &mut index) {
                Ok(moved) => {
                    tracing::debug!(segment = n, moved, "spool segment reclaimed");
                }
                Err(e) => {
                    tracing::warn!(segment = n, error = %e, "could not reclaim a spool segment; it is tried again when more of it is done");
                }
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
        let bytes = std::fs::read(&path)?;
        let mut out = Vec::new();
        let mut copies = Vec::new();
        let mut failed = None;
        walk(&bytes, |step| {
            let Step::Record(offset, record) = step else {
                return;
            };
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
            if record.kind != Kind::Done {
                copies.push((record.kind, record.id.to_string(), out.len(), here.len));
            }
            let start = offset as usize;
            out.extend_from_slice(&bytes[start..start + record.len]);
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
        });
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
