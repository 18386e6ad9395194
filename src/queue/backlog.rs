//! The delivery backlog as the inbound side sees it: how many queued
//! messages are due now and wait for a delivery slot. The queue manager
//! sets it every turn of its loop; sessions read it without a lock to
//! slow down or refuse new mail when delivery cannot keep up (inbound
//! flow control, `[queue] backlog_limit` and `in_flow_delay`).
//!
//! Deferred messages (next attempt in the future) and held ones are not
//! part of it: a queue of a million deferred messages is no reason to
//! slow down, a thousand messages nobody has a slot for is.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A shared count of messages due and waiting; cheap to clone, every
/// clone sees the same count.
#[derive(Clone, Debug, Default)]
pub struct Backlog(Arc<AtomicUsize>);

impl Backlog {
    /// The queue manager's latest count.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the count (the queue manager, once a turn; tests).
    pub fn set(&self, messages: usize) {
        self.0.store(messages, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::Backlog;

    #[test]
    fn every_clone_sees_the_count() {
        let backlog = Backlog::default();
        let seen = backlog.clone();
        assert_eq!(seen.get(), 0);
        backlog.set(42);
        assert_eq!(seen.get(), 42);
    }
}
