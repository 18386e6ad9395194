//! Done records, on their way to the committer without waking it when
//! it is busy anyway.
//!
//! A message record wakes the committer at once: its writer waits for
//! the sync before it answers `250`. A done record only has to be
//! written with some later batch (lost in a crash, its message is
//! delivered again: a duplicate, never a loss), yet sending each one
//! over the committer's channel woke its thread once per delivered
//! message (a futex call for the sender, a context switch for the
//! committer: 3% of W1's samples). Done records wait here instead. The
//! committer takes them at the end of every batch's gathering and before
//! it waits for its next job; a record wakes it only when it waits (for
//! a job, or with nothing to do). So a record is written as soon as it
//! was before (right away, or after the batch being written), without
//! the wake when the committer is gathering or writing. (State records
//! still go over the channel: they come only with deferrals.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard};

use super::Job;

#[derive(Default)]
pub(in crate::queue::spool) struct Later {
    records: Mutex<VecDeque<Job>>,
    /// The committer waits on its channel: the next record must wake it.
    asleep: AtomicBool,
}

impl Later {
    /// Queues `job` (a done record); wakes the committer over `wake`
    /// only when it waits on its channel.
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
    #[cfg(test)]
    fn waiting(&self) -> bool {
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

    /// The committer's wait for its next job: `wait` blocks on its
    /// channel, and a record pushed meanwhile wakes it; a record that
    /// waits already is the next job instead (`Ok`).
    pub(super) fn sleep<T>(&self, wait: impl FnOnce() -> T) -> Result<Job, T> {
        self.asleep.store(true, Ordering::SeqCst);
        let next = match self.first() {
            Some(job) => Ok(job),
            None => Err(wait()),
        };
        self.asleep.store(false, Ordering::SeqCst);
        next
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
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_record_wakes_the_committer_only_while_it_waits() {
        let later = Arc::new(Later::default());
        let (wake, jobs) = mpsc::channel();
        // Busy (gathering or writing): no wake.
        later.push(Job::Done(vec![1]), &wake);
        assert!(jobs.try_recv().is_err());
        assert!(later.waiting());
        // About to wait with a record waiting: the record is the next job.
        assert!(matches!(later.sleep(|| None::<Job>), Ok(Job::Done(r)) if r == [1]));
        assert!(!later.waiting());
        // Waiting, then a record comes from another thread: it wakes it.
        let pusher = later.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            pusher.push(Job::Done(vec![2]), &wake);
        });
        let next = later.sleep(|| jobs.recv_timeout(Duration::from_secs(10)));
        let _ = thread.join();
        match next {
            // Woken: the record waits to be taken with the batch.
            Err(Ok(Job::Wake)) => {
                assert!(matches!(later.take().pop_front(), Some(Job::Done(r)) if r == [2]))
            }
            // Pushed before the committer looked (a slow test machine).
            Ok(Job::Done(r)) => assert_eq!(r, [2]),
            _ => panic!("the committer slept through a record"),
        }
        // Not waiting any more: the next record wakes nobody.
        let (wake, jobs) = mpsc::channel();
        later.push(Job::Done(vec![3]), &wake);
        assert!(jobs.try_recv().is_err());
    }
}
