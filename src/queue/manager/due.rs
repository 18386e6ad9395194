//! When waiting messages are due, in order; and how many of them are due
//! already (the backlog that inbound flow control reads,
//! [`crate::queue::backlog`]).
//!
//! Two heaps hold (due time, id): `ready` what was due by the last
//! [`Due::advance`], `later` the rest. Advancing moves what has come due
//! from one to the other, each entry once, so a turn of the manager's
//! loop costs nothing for the messages deferred to later, however many.
//! Both heaps may hold stale entries (a message rescheduled, taken or
//! gone, or pushed twice): the board's table is the truth, and every
//! method that looks at an entry asks it. `ready_count` counts exactly
//! the waiting messages due by `horizon`: an entry counts when it is
//! pushed due already, or when [`Due::advance`] moves it and the board
//! `claim`s it (once a message, however many entries it has); the board
//! calls [`Due::uncount`] when a counted message stops waiting. An entry
//! is 16 bytes: times are Unix seconds in a `u32` (good until 2106).
//!
//! Only messages due within [`WINDOW`] of the horizon are in the heaps at
//! all: a message deferred for longer is kept by the board's table alone
//! (its slot has the time), and [`Due::slide`] tells the board, every half
//! window, which times to take in. A queue of a million messages deferred
//! for hours so costs the heaps nothing, and the board one pass over its
//! table every half hour.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::queue::qid::Qid;

type Heap = BinaryHeap<Reverse<(u32, Qid)>>;

/// How far ahead of the horizon the heaps look, in seconds.
pub(super) const WINDOW: u32 = 3600;

/// A Unix time as the heaps keep it.
pub(super) fn secs(at: i64) -> u32 {
    at.clamp(0, i64::from(u32::MAX)) as u32
}

#[derive(Default)]
pub(super) struct Due {
    /// Entries due by `horizon`.
    ready: Heap,
    /// Entries due after `horizon` when they were pushed.
    later: Heap,
    /// The latest time [`Due::advance`] was given.
    horizon: u32,
    /// Messages due after this are not in the heaps (see [`WINDOW`]).
    window_end: u32,
    /// Waiting messages due by `horizon`.
    ready_count: usize,
}

impl Due {
    /// `id` waits until `at` (the board has recorded it); true when it
    /// is due already and counted. Past the window it is not kept here.
    pub(super) fn push(&mut self, id: Qid, at: u32) -> bool {
        if at <= self.horizon {
            self.ready_count += 1;
            self.ready.push(Reverse((at, id)));
            true
        } else {
            if at <= self.window_end {
                self.later.push(Reverse((at, id)));
            }
            false
        }
    }

    /// Once half the window has passed, moves it on: the board pushes its
    /// waiting messages due in the returned range (after the old end, up
    /// to the new one).
    pub(super) fn slide(&mut self) -> Option<(u32, u32)> {
        if self.horizon.saturating_add(WINDOW / 2) <= self.window_end {
            return None;
        }
        let old = self.window_end;
        self.window_end = self.horizon.saturating_add(WINDOW);
        Some((old, self.window_end))
    }

    /// Room in the ready heap for `more` entries (before many
    /// [`Due::push_ready`]s: one allocation, not a doubling each time).
    pub(super) fn reserve_ready(&mut self, more: usize) {
        self.ready.reserve(more);
    }

    /// Message `id`, due at `at` (by the horizon), goes to the ready heap;
    /// `newly`: it was not counted before.
    pub(super) fn push_ready(&mut self, at: u32, id: Qid, newly: bool) {
        self.ready_count += usize::from(newly);
        self.ready.push(Reverse((at, id)));
    }

    /// A counted message stopped waiting.
    pub(super) fn uncount(&mut self) {
        self.ready_count = self.ready_count.saturating_sub(1);
    }

    /// The latest time [`Due::advance`] was given.
    pub(super) fn horizon(&self) -> u32 {
        self.horizon
    }

    /// The earliest due time of any entry (maybe a stale one: the loop
    /// then wakes for nothing, once); none past the window.
    pub(super) fn next(&self) -> Option<i64> {
        let first = |heap: &Heap| heap.peek().map(|Reverse((at, _))| i64::from(*at));
        match (first(&self.ready), first(&self.later)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time has come to `now`: what is due by then counts as ready.
    /// Each entry moves once, so this costs nothing while nothing comes
    /// due (and time never goes back for it: an earlier `now` is ignored).
    pub(super) fn advance(&mut self, now: i64, mut claim: impl FnMut(Qid, u32) -> bool) {
        self.horizon = self.horizon.max(secs(now));
        while let Some(Reverse((at, _))) = self.later.peek() {
            if *at > self.horizon {
                break;
            }
            let Some(Reverse((at, id))) = self.later.pop() else {
                break;
            };
            // A stale entry (rescheduled, taken, gone, or a second one) is dropped.
            if claim(id, at) {
                self.ready_count += 1;
                self.ready.push(Reverse((at, id)));
            }
        }
    }

    /// The waiting messages due by the last [`Due::advance`]: the backlog.
    pub(super) fn ready(&self) -> usize {
        self.ready_count
    }

    /// The earliest message due by the last [`Due::advance`], the first
    /// entry that is `current`; the board takes it off.
    pub(super) fn pop_ready(&mut self, current: impl Fn(Qid, u32) -> bool) -> Option<(Qid, u32)> {
        while let Some(Reverse((at, id))) = self.ready.pop() {
            if current(id, at) {
                self.ready_count -= 1;
                return Some((id, at));
            }
        }
        None
    }

    /// Entries in the heaps, stale ones included.
    pub(super) fn entries(&self) -> usize {
        self.ready.len() + self.later.len()
    }

    /// Starts again from the waiting messages alone (dropping stale
    /// entries, once they outnumber the live ones); those due by
    /// [`Due::horizon`] count.
    pub(super) fn rebuild(&mut self, waiting: impl Iterator<Item = (Qid, u32)>) {
        let (mut ready, mut later) = (Vec::new(), Vec::new());
        for (id, at) in waiting.filter(|&(_, at)| at <= self.window_end) {
            match at <= self.horizon {
                true => ready.push(Reverse((at, id))),
                false => later.push(Reverse((at, id))),
            }
        }
        self.ready_count = ready.len();
        self.ready = ready.into();
        self.later = later.into();
    }
}
