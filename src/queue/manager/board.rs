//! The manager's board: which messages wait for when, which are busy,
//! which are on hold, and when each arrived. Bookkeeping only, no I/O.
//!
//! One [`IdMap`] entry a message (24 bytes: the key, two times, flags),
//! plus 16 bytes in the due heaps for a message due within the hour (see
//! [`Due`]): a queue of a million messages deferred for longer costs the
//! board 24 MB.

use std::collections::HashMap;

use super::due::{secs, Due};
use crate::queue::backlog::Backlog;
use crate::queue::control::Command;
use crate::queue::qid::{IdMap, Qid};
use crate::queue::spool::Summary;

/// What the board knows of one message.
#[derive(Clone, Copy, Default)]
struct Slot {
    /// When it is due, while [`WAITING`].
    due: u32,
    /// When it arrived (Unix seconds), while [`QUEUED`].
    arrived: u32,
    flags: u8,
}

/// In the queue (arrived, not gone).
const QUEUED: u8 = 1;
/// Not in flight, due at `due`.
const WAITING: u8 = 2;
/// Being attempted or returned right now.
const BUSY: u8 = 4;
/// To try again as soon as its turn is over.
const RETRY_AFTER: u8 = 8;
/// On hold (`tlsrelay queue hold`): never scheduled.
const ON_HOLD: u8 = 16;
/// Waiting and due already: in the backlog count (see [`Due`]).
const COUNTED: u8 = 32;

/// Which messages wait for when, which are busy this moment, and which
/// administrator requests wait for a busy message. Owned by the manager's
/// loop alone, so it needs no lock.
#[derive(Default)]
pub(super) struct Board {
    slots: IdMap<Slot>,
    due: Due,
    /// Messages with [`BUSY`] set.
    busy: usize,
    /// Messages with [`WAITING`] set.
    waiting: usize,
    /// Requests about a busy message, answered when its turn is over.
    pub(super) held: HashMap<String, Vec<Command>>,
}

impl Board {
    fn flag(&self, id: &str, flag: u8) -> bool {
        self.slots
            .get(Qid::of(id))
            .is_some_and(|slot| slot.flags & flag != 0)
    }

    /// Changes `id`'s slot; a slot with no flag left is dropped.
    fn update(&mut self, key: Qid, change: impl FnOnce(&mut Slot)) {
        let mut slot = self.slots.get(key).copied().unwrap_or_default();
        let before = slot.flags;
        change(&mut slot);
        self.busy =
            self.busy + usize::from(slot.flags & BUSY != 0) - usize::from(before & BUSY != 0);
        self.waiting = self.waiting + usize::from(slot.flags & WAITING != 0)
            - usize::from(before & WAITING != 0);
        match slot.flags {
            0 if before != 0 => {
                self.slots.remove(key);
            }
            0 => {}
            _ => {
                self.slots.insert(key, slot);
            }
        }
    }

    /// Takes `id` off the schedule if it waits; when it was due.
    fn unwait(&mut self, key: Qid) -> Option<i64> {
        let slot = *self.slots.get(key)?;
        if slot.flags & WAITING == 0 {
            return None;
        }
        if slot.flags & COUNTED != 0 {
            self.due.uncount();
        }
        self.update(key, |s| s.flags &= !(WAITING | COUNTED));
        Some(i64::from(slot.due))
    }

    /// `id` waits until `at` (replacing when it waited for before).
    pub(super) fn schedule(&mut self, id: &str, at: i64) {
        self.schedule_key(Qid::of(id), at);
    }

    fn schedule_key(&mut self, key: Qid, at: i64) {
        self.unwait(key);
        let at = secs(at);
        let counted = if self.due.push(key, at) { COUNTED } else { 0 };
        self.update(key, |s| {
            s.flags |= WAITING | counted;
            s.due = at;
        });
        // Stale heap entries (rescheduled messages) are dropped once they
        // outnumber the waiting ones.
        if self.due.entries() > 2 * self.waiting + 1024 {
            let waiting = self
                .slots
                .iter()
                .filter(|(_, s)| s.flags & WAITING != 0)
                .map(|(k, s)| (k, s.due));
            self.due.rebuild(waiting);
            let horizon = self.due.horizon();
            self.slots
                .for_each_mut(|_, s| match s.flags & WAITING != 0 && s.due <= horizon {
                    true => s.flags |= COUNTED,
                    false => s.flags &= !COUNTED,
                });
        }
    }

    /// A message joins the queue.
    pub(super) fn arrive(&mut self, id: &str, at: i64) {
        self.update(Qid::of(id), |s| {
            s.flags |= QUEUED;
            s.arrived = secs(at);
        });
    }

    /// A message found in the spool at start joins the queue: on hold, or
    /// due when its state says.
    pub(super) fn recovered(&mut self, key: Qid, arrived: i64, summary: Summary) {
        self.update(key, |s| {
            s.flags |= QUEUED;
            s.arrived = secs(arrived);
            if summary.held {
                s.flags |= ON_HOLD;
            }
        });
        // Held, now or by a request that came before the recovery ended.
        if self.slots.get(key).is_none_or(|s| s.flags & ON_HOLD == 0) {
            self.schedule_key(key, summary.next_attempt);
        }
    }

    /// A message leaves the queue.
    pub(super) fn leave(&mut self, id: &str) {
        let key = Qid::of(id);
        self.unwait(key);
        self.update(key, |s| s.flags &= !(QUEUED | ON_HOLD));
    }

    /// True when `id` is in the queue (waiting, busy or on hold).
    pub(super) fn queued(&self, id: &str) -> bool {
        self.flag(id, QUEUED)
    }

    /// Takes a message off the schedule for a task that acts on it;
    /// returns when it was due (`None`: on hold, or not waiting).
    pub(super) fn take(&mut self, id: &str) -> Option<i64> {
        let key = Qid::of(id);
        let at = self.unwait(key);
        self.update(key, |s| s.flags |= BUSY);
        at
    }

    /// The message's turn is over: not busy; true when it is to be tried
    /// again at once (a retry asked for meanwhile).
    pub(super) fn turn_over(&mut self, id: &str) -> bool {
        let retry = self.flag(id, RETRY_AFTER);
        self.update(Qid::of(id), |s| s.flags &= !(BUSY | RETRY_AFTER));
        retry
    }

    pub(super) fn busy(&self, id: &str) -> bool {
        self.flag(id, BUSY)
    }

    /// Waiting messages, for `queue retry --all`.
    pub(super) fn waiting_count(&self) -> usize {
        self.waiting
    }

    /// Busy messages, for `queue retry --all`.
    pub(super) fn busy_count(&self) -> usize {
        self.busy
    }

    /// `id`, busy now, is tried again as soon as its turn is over.
    pub(super) fn retry_after(&mut self, id: &str) {
        self.update(Qid::of(id), |s| s.flags |= RETRY_AFTER);
    }

    pub(super) fn on_hold(&self, id: &str) -> bool {
        self.flag(id, ON_HOLD)
    }

    /// On hold, or not: a held message is never scheduled.
    pub(super) fn set_hold(&mut self, id: &str, held: bool) {
        self.update(Qid::of(id), |s| match held {
            true => s.flags |= ON_HOLD,
            false => s.flags &= !ON_HOLD,
        });
    }

    /// `queue retry --all`: every waiting message is due now, and every
    /// busy one is tried again as soon as its turn is over. One pass over
    /// the table, each waiting message pushed straight into the ready heap
    /// (room made once, no list of ids in between). Returns how many were
    /// made due.
    pub(super) fn retry_all(&mut self, now: i64) -> usize {
        self.advance(now);
        let at = secs(now).min(self.due.horizon());
        let Board {
            slots,
            due,
            waiting,
            ..
        } = self;
        due.reserve_ready(*waiting);
        let mut count = 0;
        slots.for_each_mut(|key, s| {
            if s.flags & WAITING != 0 {
                due.push_ready(at, key, s.flags & COUNTED == 0);
                s.flags |= COUNTED;
                s.due = at;
                count += 1;
            } else if s.flags & BUSY != 0 {
                s.flags |= RETRY_AFTER;
            }
        });
        count
    }

    /// The ids of the waiting messages.
    #[cfg(test)]
    pub(super) fn waiting_ids(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|(_, s)| s.flags & WAITING != 0)
            .map(|(k, _)| k.to_string())
            .collect()
    }

    /// The earliest due time of any waiting message (maybe one that is no
    /// longer: the loop then wakes for nothing, once).
    pub(super) fn next_due(&self) -> Option<i64> {
        self.due.next()
    }

    /// The queue's size and oldest arrival, for the metrics, and the
    /// messages due by `now` that wait for a slot, for inbound flow
    /// control (`backlog`) and the metrics.
    pub(super) fn publish(&mut self, now: i64, backlog: &Backlog) {
        self.advance(now);
        let ready = self.due.ready();
        backlog.set(ready);
        // With the relay's ids the smallest key is the oldest message.
        let queued = self.slots.len();
        let oldest = self.oldest();
        crate::metrics::queue_measured(queued, oldest, ready);
    }

    /// Time has come to `now` for the heaps; messages deferred past their
    /// window come in as it moves on.
    fn advance(&mut self, now: i64) {
        let slots = &mut self.slots;
        self.due.advance(now, |key, at| claim(slots, key, at));
        let Some((after, until)) = self.due.slide() else {
            return;
        };
        let coming: Vec<(Qid, u32)> = self
            .slots
            .iter()
            .filter(|(_, s)| s.flags & WAITING != 0 && s.due > after && s.due <= until)
            .map(|(k, s)| (k, s.due))
            .collect();
        for (key, at) in coming {
            if self.due.push(key, at) {
                if let Some(slot) = self.slots.get_mut(key) {
                    slot.flags |= COUNTED;
                }
            }
        }
    }

    /// The oldest message's arrival: the first queued slot's.
    fn oldest(&mut self) -> Option<i64> {
        let (_, first) = self.slots.first()?;
        if first.flags & QUEUED != 0 {
            return Some(i64::from(first.arrived));
        }
        // A slot not (or no longer) queued but busy or on hold: rare, look on.
        self.slots
            .iter()
            .filter(|(_, s)| s.flags & QUEUED != 0)
            .map(|(k, s)| (k, s.arrived))
            .min()
            .map(|(_, at)| i64::from(at))
    }

    /// The next message due by `now`, taken off the board and busy.
    pub(super) fn take_due(&mut self, now: i64) -> Option<String> {
        self.advance(now);
        let slots = &self.slots;
        let (key, _) = self.due.pop_ready(|key, at| current(slots, key, at))?;
        self.update(key, |s| s.flags = (s.flags & !(WAITING | COUNTED)) | BUSY);
        Some(key.to_string())
    }
}

/// True, once, when the heap entry (`key`, `at`) that came due is what
/// the table says: the message is counted from now on.
fn claim(slots: &mut IdMap<Slot>, key: Qid, at: u32) -> bool {
    match slots.get_mut(key) {
        Some(s) if s.flags & (WAITING | COUNTED) == WAITING && s.due == at => {
            s.flags |= COUNTED;
            true
        }
        _ => false,
    }
}

/// True when the heap entry (`key`, `at`) is what the table says.
fn current(slots: &IdMap<Slot>, key: Qid, at: u32) -> bool {
    slots
        .get(key)
        .is_some_and(|s| s.flags & WAITING != 0 && s.due == at)
}

#[cfg(test)]
#[path = "board_tests.rs"]
mod tests;
