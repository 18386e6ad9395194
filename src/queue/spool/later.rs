//! Done records, on their way to the committer without waking it.
//!
//! A message record wakes the committer at once: its writer waits for
//! the sync before it answers `250`. A done record only has to be
//! written with some later batch (lost in a crash, its message is
//! delivered again: a duplicate, never a loss), yet sending each one
//! over the committer's channel woke its thread once per delivered
//! message (a futex call for the sender, a context switch for the
//! committer: 3% of W1's samples). Done records wait here instead.
//! (State records still go over the channel: they come only with
//! deferrals, and `queue show` right after one should see it.) The committer takes them with every batch, and,
//! when no message comes, within [`LATER`] of its last look; only when
//! it sleeps with no deadline (after [`IDLE`](super::reclaim)) does a
//! record wake it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::Duration;

use super::Job;

/// How long a record may wait here while no message comes.
pub(super) const LATER: Duration = Duration::from_millis(100);

#[derive(Default)]
pub(in crate::queue::spool) struct Later {
    records: Mutex<VecDeque<Job>>,
    /// The committer sleeps on its channel with no deadline: the next
    /// record must wake it.
    asleep: AtomicBool,
}

impl Later {
    /// Queues `job` (a done record); wakes the committer over
    /// `wake` only when it sleeps with no deadline.
    pub(in crate::queue::spool) fn push(&self, job: Job, wake: &mpsc::Sender<Job>) {
        self.lock().push_back(job);
        // After the push: either the committer, about to sleep, sees the
        // record, or this sees it asleep (both orders are sequentially
        // consistent), so no record is left behind a sleeping committer.
        if self.asleep.swap(false, Ordering::SeqCst) {
            let _ = wake.send(Job::Wake);
        }
    }

    /// True when records wait.
    pub(in crate::queue::spool) fn waiting(&self) -> bool {
        !self.lock().is_empty()
    }

    /// The oldest record waiting.
    pub(super) fn first(&self) -> Option<Job> {
        self.lock().pop_front()
    }

    /// Every record waiting, oldest first.
    pub(super) fn take(&self) -> VecDeque<Job> {
        std::mem::take(&mut *self.lock())
    }

    /// The committer's sleep with no deadline: `wait` blocks on its
    /// channel, unless a record came meanwhile (then the record is the
    /// next job).
    pub(super) fn sleep(&self, wait: impl FnOnce() -> Option<Job>) -> Option<Job> {
        self.asleep.store(true, Ordering::SeqCst);
        let job = match self.first() {
            Some(job) => Some(job),
            None => wait(),
        };
        self.asleep.store(false, Ordering::SeqCst);
        job
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Job>> {
        // A queue of records, whole after every single operation.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for Later {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Later")
            .field("records", &self.lock().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_record_wakes_the_committer_only_when_it_sleeps_with_no_deadline() {
        let later = Arc::new(Later::default());
        let (wake, jobs) = mpsc::channel();
        // Awake (gathering, or waiting with a deadline): no wake.
        later.push(Job::Done(vec![1]), &wake);
        assert!(jobs.try_recv().is_err());
        assert!(later.waiting());
        // About to sleep with a record waiting: the record is the next job.
        assert!(matches!(later.sleep(|| None), Some(Job::Done(r)) if r == [1]));
        assert!(!later.waiting());
        // Asleep, then a record comes from another thread: it wakes it.
        let pusher = later.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            pusher.push(Job::Done(vec![2]), &wake);
        });
        let job = later.sleep(|| jobs.recv_timeout(Duration::from_secs(10)).ok());
        let _ = thread.join();
        match job {
            // Woken: the record waits to be taken with the batch.
            Some(Job::Wake) => {
                assert!(matches!(later.take().pop_front(), Some(Job::Done(r)) if r == [2]))
            }
            // Pushed before the committer looked (a slow test machine).
            Some(Job::Done(r)) => assert_eq!(r, [2]),
            _ => panic!("the committer slept through a record"),
        }
    }
}
