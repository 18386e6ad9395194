//! What a spool holds when it opens, and what is found damaged: the
//! segments of earlier runs read into the index (messages and their
//! latest delivery states), large messages listed,
//! damaged stretches and unreadable messages kept in `quarantine/`.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tokio::sync::oneshot;

use super::committer::{lock as lock_index, Job};
use super::index::{self, Index};
use super::{list_ids, modes, Recovered, Spool, SpoolError};
use crate::queue::qid::Qid;

impl Spool {
    /// Reads the segments written before this run into the index, and
    /// lists every queued message (those in `queue/` too) with its arrival.
    /// Damaged stretches of segments go to `quarantine/` with a log line;
    /// the torn end of a batch a crash interrupted (never acknowledged) is
    /// dropped and counted in the log.
    pub fn recover(&self) -> Result<Recovered, SpoolError> {
        let view = &self.inner.view;
        let mut old = Index::default();
        let report = old.scan(&view.segments, self.inner.first_new)?;
        for (n, offset, bytes) in &report.damaged {
            let name = format!("segment-{n}-at-{offset}");
            match self.keep_in_quarantine(&name, bytes) {
                Ok(to) => {
                    tracing::error!(segment = n, offset, bytes = bytes.len(), quarantined = %to.display(), "damaged stretch of a spool segment: moved to quarantine")
                }
                Err(e) => {
                    tracing::error!(segment = n, offset, bytes = bytes.len(), quarantine_error = %e, "damaged stretch of a spool segment, and it could not be copied to quarantine")
                }
            }
        }
        if report.torn > 0 {
            tracing::info!(bytes = report.torn, "dropped the unfinished end of a spool segment (a batch a crash interrupted, never acknowledged)");
        }
        let segments = old.segments.len();
        let mut messages: Vec<_> = report
            .found
            .iter()
            .map(|(id, found)| (id, found.arrived, found.summary))
            .collect();
        drop(report);
        let files = list_ids(&view.queue)?;
        let queued: HashSet<&str> = files.iter().map(String::as_str).collect();
        old.retain_file_states(|id| queued.contains(id));
        lock_index(&view.index).merge(old);
        // Wakes the committer, which reclaims what is worth it between batches.
        let _ = self.inner.committer.send(Job::Flush(oneshot::channel().0));
        for id in files {
            let arrived = arrived_file(&view.queue.join(&id)).unwrap_or(0);
            messages.push((Qid::of(&id), arrived, None));
        }
        messages.sort_unstable_by_key(|(id, _, _)| *id);
        Ok(Recovered { messages, segments })
    }

    /// Moves an unreadable message out of the queue into `quarantine/`, so
    /// it is neither retried for ever nor lost: an administrator can look
    /// at it. Returns where it went.
    pub fn quarantine(&self, id: &str) -> io::Result<PathBuf> {
        let view = &self.inner.view;
        let located = lock_index(&view.index).locate(&view.segments, id);
        match located {
            Some(found) => {
                let (loc, file) = found?;
                let bytes = index::read_raw(&file, loc)?;
                let to = self.keep_in_quarantine(id, &bytes)?;
                self.remove(id);
                Ok(to)
            }
            None => {
                let to = quarantine_folder(&view.queue)?.join(id);
                fs::rename(view.queue.join(id), &to)?;
                Ok(to)
            }
        }
    }

    fn keep_in_quarantine(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let to = quarantine_folder(&self.inner.view.queue)?.join(name);
        modes::write_private(&to, bytes)?;
        Ok(to)
    }
}

/// `quarantine/` beside `queue/`, created.
fn quarantine_folder(queue: &Path) -> io::Result<PathBuf> {
    let folder = queue.with_file_name("quarantine");
    modes::create_folder(&folder)?;
    Ok(folder)
}

/// When the large message at `path` arrived: its file's last change (the
/// commit), in Unix seconds.
fn arrived_file(path: &Path) -> Option<i64> {
    let modified = fs::metadata(path).ok()?.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_secs()).ok()
}
