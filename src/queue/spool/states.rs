//! Delivery states in the spool (see "Delivery states" in
//! [`spool`](super)): saved as state records through the committer,
//! not synced and not waited for; read back through the index.

use std::fs;
use std::path::Path;

use super::committer::{lock as lock_index, Job};
use super::record::{self, Summary};
use super::Spool;

impl Spool {
    /// Saves `json` as the delivery state of queued message `id`. Written
    /// with the committer's next batch, neither synced nor waited for: a
    /// crash can lose it, and then recipients delivered already are tried
    /// again (a duplicate, never a loss). A load sees it at once; a
    /// [`flush`](Self::flush) puts it on stable storage. A message no
    /// longer queued gets no state. `summary` goes into the record's head,
    /// for recovery.
    pub fn save_state(&self, id: &str, summary: Summary, json: Vec<u8>) {
        let view = &self.inner.view;
        let in_segment = self.in_segment(id);
        if !in_segment && !view.queue.join(id).is_file() {
            return;
        }
        let record = record::state(id, summary, &json);
        {
            let mut index = lock_index(&view.index);
            // Gone meanwhile (removed by another task): nothing to save.
            if in_segment && !index.contains(id) {
                return;
            }
            let save = index.state_saved(id, json);
            // Under the lock, so saves reach the committer in their order.
            let _ = self.inner.committer.send(Job::State {
                id: id.to_string(),
                save,
                record,
            });
        }
        // The record supersedes the file an earlier release wrote.
        if let Some(old) = &view.old_states {
            let _ = fs::remove_file(old.join(id));
        }
    }

    /// The latest delivery state of message `id` (see [`SpoolView::state`](super::SpoolView::state)).
    pub fn state(&self, id: &str) -> Option<Vec<u8>> {
        self.inner.view.state(id)
    }
}

/// Removes `state/` of a spool written by an earlier release once no
/// state is left in it (the leftovers of unfinished saves first), so that
/// a spool without old states costs no lookup in it.
pub(super) fn drop_old_states(dir: &Path) {
    let folder = dir.join("state");
    let Ok(entries) = fs::read_dir(&folder) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            let _ = fs::remove_file(path);
        }
    }
    let _ = fs::remove_dir(&folder);
}
