//! The manager's board: which messages wait for when, which are busy,
//! which are on hold, and when each arrived. Bookkeeping only, no I/O.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

use crate::queue::control::Command;

/// Which messages wait for when, which are busy this moment, and which
/// administrator requests wait for a busy message. Owned by the manager's
/// loop alone, so it needs no lock.
#[derive(Default)]
pub(super) struct Board {
    /// Due times; may hold stale entries, `waiting` is the truth.
    pub(super) due: BinaryHeap<Reverse<(i64, String)>>,
    /// Messages not in flight, and when each is due.
    pub(super) waiting: HashMap<String, i64>,
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
        self.waiting.insert(id.clone(), at);
        self.due.push(Reverse((at, id)));
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
        self.waiting.remove(id)
    }

    /// The queue's size and oldest arrival, for the metrics.
    pub(super) fn publish(&self) {
        let oldest = self.by_arrival.first().map(|(at, _)| *at);
        crate::metrics::queue_measured(self.arrived.len(), oldest);
    }

    /// The next message due by `now`, taken off the board.
    pub(super) fn take_due(&mut self, now: i64) -> Option<String> {
        while let Some(Reverse((at, _))) = self.due.peek() {
            if *at > now {
                return None;
            }
            let Reverse((at, id)) = self.due.pop()?;
            if self.waiting.get(&id) == Some(&at) {
                self.waiting.remove(&id);
                return Some(id);
            }
        }
        None
    }
}
