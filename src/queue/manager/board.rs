//! The manager's board: which messages wait for when, which are busy,
//! which are on hold, and when each arrived. Bookkeeping only, no I/O.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::due::Due;
use crate::queue::backlog::Backlog;
use crate::queue::control::Command;

/// Which messages wait for when, which are busy this moment, and which
/// administrator requests wait for a busy message. Owned by the manager's
/// loop alone, so it needs no lock.
#[derive(Default)]
pub(super) struct Board {
    /// Messages not in flight, and when each is due.
    pub(super) due: Due,
    /// Messages being attempted or returned right now.
    pub(super) busy: HashSet<String>,
    /// Requests about a busy message, answered when its turn is over.
    pub(super) held: HashMap<String, Vec<Command>>,
    /// Busy messages to try again as soon as their turn is over.
    pub(super) retry_after: HashSet<String>,
    /// Messages on hold (`tlsrelay queue hold`): never scheduled.
    pub(super) on_hold: HashSet<String>,
    /// Every queued message and when it arrived (Unix time), oldest
    /// first in `by_arrival`: the queue's size and age for the metrics,
    /// kept here so that a scrape reads no folder.
    pub(super) arrived: HashMap<String, i64>,
    pub(super) by_arrival: BTreeSet<(i64, String)>,
}

impl Board {
    pub(super) fn schedule(&mut self, id: String, at: i64) {
        self.due.schedule(id, at);
    }

    /// A message joins the queue.
    pub(super) fn arrive(&mut self, id: &str, at: i64) {
        if let Some(old) = self.arrived.insert(id.to_string(), at) {
            self.by_arrival.remove(&(old, id.to_string()));
        }
        self.by_arrival.insert((at, id.to_string()));
    }

    /// A message leaves the queue.
    pub(super) fn leave(&mut self, id: &str) {
        if let Some(at) = self.arrived.remove(id) {
            self.by_arrival.remove(&(at, id.to_string()));
        }
    }

    /// True when `id` is in the queue (waiting, busy or on hold).
    pub(super) fn queued(&self, id: &str) -> bool {
        self.arrived.contains_key(id)
    }

    /// Takes a message off the schedule for a task that acts on it;
    /// returns when it was due (`None`: on hold, or not waiting).
    pub(super) fn take(&mut self, id: &str) -> Option<i64> {
        self.busy.insert(id.to_string());
        self.due.remove(id)
    }

    /// The queue's size and oldest arrival, for the metrics, and the
    /// messages due by `now` that wait for a slot, for inbound flow
    /// control (`backlog`) and the metrics.
    pub(super) fn publish(&mut self, now: i64, backlog: &Backlog) {
        let oldest = self.by_arrival.first().map(|(at, _)| *at);
        self.due.advance(now);
        let ready = self.due.ready();
        backlog.set(ready);
        crate::metrics::queue_measured(self.arrived.len(), oldest, ready);
    }

    /// The next message due by `now`, taken off the board.
    pub(super) fn take_due(&mut self, now: i64) -> Option<String> {
        self.due.take_due(now)
    }
}

#[cfg(test)]
mod tests {
    use super::Board;
    use crate::queue::backlog::Backlog;

    #[test]
    fn the_backlog_is_what_is_due_and_waits_not_what_is_deferred_held_or_busy() {
        let mut board = Board::default();
        let backlog = Backlog::default();
        for (id, at) in [("new", 100), ("due", 50), ("deferred", 400), ("busy", 90)] {
            board.arrive(id, 0);
            board.schedule(id.into(), at);
        }
        board.arrive("held", 0);
        board.on_hold.insert("held".into());
        assert_eq!(board.take_due(100).as_deref(), Some("due"));
        assert_eq!(board.take_due(100).as_deref(), Some("busy"));
        board.busy.insert("busy".into());
        board.publish(100, &backlog);
        assert_eq!(backlog.get(), 1, "only `new` waits for a slot");
        // An administrator's request takes one off; `queue retry` makes
        // the deferred one due.
        board.take("new");
        board.schedule("deferred".into(), 100);
        board.publish(100, &backlog);
        assert_eq!(backlog.get(), 1);
        // Its attempt deferred it again: the backlog is empty.
        board.schedule("deferred".into(), 400);
        board.publish(101, &backlog);
        assert_eq!(backlog.get(), 0);
    }
}
