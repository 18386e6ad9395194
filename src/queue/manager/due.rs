//! The messages that wait for an attempt, and when each is due; and how
//! many of them are due already (the backlog that inbound flow control
//! reads, [`crate::queue::backlog`]).
//!
//! Two heaps hold the due times: `ready` what was due by the last
//! [`Due::advance`], `later` the rest. Advancing moves what has come due
//! from one to the other, each entry once, so a turn of the manager's
//! loop costs nothing for the messages deferred to later, however many.
//! Both heaps may hold stale entries (a message rescheduled, taken or
//! gone); `waiting` is the truth, and `ready_count` counts exactly the
//! waiting messages due by `horizon`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

type Heap = BinaryHeap<Reverse<(i64, String)>>;

#[derive(Default)]
pub(super) struct Due {
    /// Messages not in flight, and when each is due.
    waiting: HashMap<String, i64>,
    /// Entries due by `horizon`.
    ready: Heap,
    /// Entries due after `horizon` when they were pushed.
    later: Heap,
    /// The latest time [`Due::advance`] was given.
    horizon: i64,
    /// Messages in `waiting` due by `horizon`.
    ready_count: usize,
}

impl Due {
    /// `id` waits until `at` (replacing when it waited for before).
    pub(super) fn schedule(&mut self, id: String, at: i64) {
        if let Some(old) = self.waiting.insert(id.clone(), at) {
            self.uncount(old);
        }
        if at <= self.horizon {
            self.ready_count += 1;
            self.ready.push(Reverse((at, id)));
        } else {
            self.later.push(Reverse((at, id)));
        }
    }

    /// Takes `id` off the schedule; when it was due (`None`: not waiting).
    pub(super) fn remove(&mut self, id: &str) -> Option<i64> {
        let at = self.waiting.remove(id)?;
        self.uncount(at);
        Some(at)
    }

    /// The ids of every waiting message.
    pub(super) fn ids(&self) -> impl Iterator<Item = &String> {
        self.waiting.keys()
    }

    /// The earliest due time of any entry (maybe a stale one: the loop
    /// then wakes for nothing, once).
    pub(super) fn next(&self) -> Option<i64> {
        let first = |heap: &Heap| heap.peek().map(|Reverse((at, _))| *at);
        match (first(&self.ready), first(&self.later)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time has come to `now`: what is due by then counts as ready.
    /// Each entry moves once, so this costs nothing while nothing comes
    /// due (and time never goes back for it: an earlier `now` is ignored).
    pub(super) fn advance(&mut self, now: i64) {
        self.horizon = self.horizon.max(now);
        while let Some(Reverse((at, _))) = self.later.peek() {
            if *at > self.horizon {
                break;
            }
            let Some(Reverse((at, id))) = self.later.pop() else {
                break;
            };
            // A stale entry (rescheduled, taken or gone) is dropped.
            if self.waiting.get(&id) == Some(&at) {
                self.ready_count += 1;
                self.ready.push(Reverse((at, id)));
            }
        }
    }

    /// The waiting messages due by the last [`Due::advance`]: the backlog.
    pub(super) fn ready(&self) -> usize {
        self.ready_count
    }

    /// The earliest message due by `now`, taken off the schedule.
    pub(super) fn take_due(&mut self, now: i64) -> Option<String> {
        self.advance(now);
        while let Some(Reverse((at, id))) = self.ready.pop() {
            if self.waiting.get(&id) == Some(&at) {
                self.waiting.remove(&id);
                self.ready_count -= 1;
                return Some(id);
            }
        }
        None
    }

    /// A waiting message due at `at` leaves the count if it was in it.
    fn uncount(&mut self, at: i64) {
        if at <= self.horizon {
            self.ready_count -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Due;

    fn due(entries: &[(&str, i64)], now: i64) -> Due {
        let mut due = Due::default();
        due.advance(now);
        for (id, at) in entries {
            due.schedule(id.to_string(), *at);
        }
        due
    }

    #[test]
    fn deferred_messages_are_not_backlog_and_due_ones_are() {
        let mut due = due(&[("new", 100), ("deferred", 160), ("late", 90)], 100);
        assert_eq!(due.ready(), 2, "due now or earlier counts");
        due.advance(159);
        assert_eq!(due.ready(), 2);
        due.advance(160);
        assert_eq!(due.ready(), 3, "the deferred one came due");
        // Time does not go back for the count.
        due.advance(10);
        assert_eq!(due.ready(), 3);
    }

    #[test]
    fn taking_rescheduling_and_removing_keep_the_count_exact() {
        let mut due = due(&[("a", 100), ("b", 101), ("c", 500)], 101);
        assert_eq!(due.take_due(101).as_deref(), Some("a"), "earliest first");
        assert_eq!(due.ready(), 1);
        // Deferred after its attempt: no longer counted.
        due.schedule("b".into(), 400);
        assert_eq!(due.ready(), 0);
        // `queue retry`: due now, counted once however often.
        due.schedule("c".into(), 101);
        due.schedule("c".into(), 101);
        assert_eq!(due.ready(), 1);
        assert_eq!(due.remove("c"), Some(101));
        assert_eq!(due.remove("c"), None);
        assert_eq!(due.ready(), 0);
        // Stale entries are skipped: b comes due once, at 400.
        assert_eq!(due.take_due(399), None);
        assert_eq!(due.next(), Some(400));
        assert_eq!(due.take_due(400).as_deref(), Some("b"));
        assert_eq!(due.take_due(1000), None);
        assert_eq!(due.ready(), 0);
        assert_eq!(due.ids().count(), 0);
    }

    #[test]
    fn deferred_messages_cost_nothing_per_turn() {
        let mut due = Due::default();
        due.advance(0);
        for n in 0..200_000 {
            due.schedule(format!("m{n}"), 3600);
        }
        due.schedule("now".into(), 0);
        for turn in 1..1000 {
            due.advance(turn);
            assert_eq!(due.ready(), 1);
        }
        assert_eq!(due.ready.len(), 1, "nothing moved until it came due");
        due.advance(3600);
        assert_eq!(due.ready(), 200_001);
    }
}
