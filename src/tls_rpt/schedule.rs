//! When each daily report goes, and what is left to send (RFC 8460 §4.1
//! reports each UTC day once it has ended). Pure: the caller brings the
//! time and the random numbers, [`Book`] is saved as JSON after every
//! change so a restart neither loses a report nor sends one twice.
//!
//! A report becomes due at a random moment within [`SPREAD`] after its day
//! ends, so that reporters do not all post at midnight. A destination
//! that failed is tried again after 5 min, 15 min, 30 min, then every
//! hour, until [`GIVE_UP`] after the first try; mail destinations are done
//! once the report mail is in our own queue (the queue retries it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Reports are due within this long after their day ends.
pub const SPREAD: i64 = 4 * 3600;
/// A destination still failing this long after the first try is given up.
pub const GIVE_UP: i64 = 24 * 3600;
const BACKOFF: [i64; 3] = [300, 900, 1800];
const BACKOFF_LAST: i64 = 3600;

/// One day's report for one policy domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When it may first be sent (Unix seconds).
    pub due: i64,
    /// When it was first tried; `None` before.
    pub first_try: Option<i64>,
    /// When to try the destinations still pending.
    pub next_try: i64,
    pub tries: u32,
    /// `rua` URIs not yet served (filled at the first try); empty after
    /// the first try: all done.
    pub pending: Vec<String>,
    /// Set once the record was looked up and every destination served,
    /// or given up on.
    pub finished: bool,
}

/// Every report the relay knows of, by (day `YYYY-MM-DD`, domain).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    pub entries: BTreeMap<String, BTreeMap<String, Entry>>,
}

/// The Unix second a UTC day (`YYYY-MM-DD`, as the transit files name
/// it) ends at (the next midnight).
pub fn day_end(day: &str) -> Option<i64> {
    date_end(crate::transit::journal::parse_day(day)?)
}

/// The Unix second a UTC day ends at (the next midnight).
pub fn date_end(date: time::Date) -> Option<i64> {
    Some(date.next_day()?.midnight().assume_utc().unix_timestamp())
}

impl Book {
    /// Notes the report of `domain` for `day`, if new: due at the day's
    /// end plus `jitter` (in [0, 1)) of [`SPREAD`]. Days not yet over
    /// (at `now`) are not reported.
    pub fn add(&mut self, day: &str, domain: &str, now: i64, jitter: f64) -> bool {
        let Some(end) = day_end(day) else {
            return false;
        };
        if end > now {
            return false;
        }
        let days = self.entries.entry(day.to_string()).or_default();
        if days.contains_key(domain) {
            return false;
        }
        let due = end + (jitter.clamp(0.0, 1.0) * SPREAD as f64) as i64;
        days.insert(
            domain.to_string(),
            Entry {
                due,
                first_try: None,
                next_try: due,
                tries: 0,
                pending: Vec::new(),
                finished: false,
            },
        );
        true
    }

    /// The (day, domain) pairs to work on at `now`.
    pub fn due(&self, now: i64) -> Vec<(String, String)> {
        let mut due = Vec::new();
        for (day, domains) in &self.entries {
            for (domain, entry) in domains {
                if !entry.finished && entry.next_try <= now {
                    due.push((day.clone(), domain.clone()));
                }
            }
        }
        due
    }

    /// The earliest moment something becomes due, if anything is waiting.
    pub fn next_wake(&self) -> Option<i64> {
        (self.entries.values())
            .flat_map(|domains| domains.values())
            .filter(|e| !e.finished)
            .map(|e| e.next_try)
            .min()
    }

    /// After a try at `now`: `pending` are the destinations still to
    /// serve. Returns `Some(uris)` with those given up on, when the entry
    /// ends by giving up.
    pub fn tried(
        &mut self,
        day: &str,
        domain: &str,
        now: i64,
        pending: Vec<String>,
    ) -> Option<Vec<String>> {
        let entry = self.entries.get_mut(day)?.get_mut(domain)?;
        let first = *entry.first_try.get_or_insert(now);
        entry.tries += 1;
        if pending.is_empty() {
            entry.pending.clear();
            entry.finished = true;
            return None;
        }
        let wait = BACKOFF
            .get(entry.tries as usize - 1)
            .copied()
            .unwrap_or(BACKOFF_LAST);
        if now + wait > first + GIVE_UP {
            entry.finished = true;
            entry.pending.clear();
            return Some(pending);
        }
        entry.pending = pending;
        entry.next_try = now + wait;
        None
    }

    /// Forgets days that ended before `oldest` (Unix seconds).
    pub fn prune(&mut self, oldest: i64) {
        self.entries
            .retain(|day, _| day_end(day).is_some_and(|end| end >= oldest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: &str = "2026-12-06";
    const END: i64 = 1_796_601_600; // 2026-12-07T00:00:00Z

    #[test]
    fn days_and_their_ends() {
        assert_eq!(day_end(DAY), Some(END));
        assert_eq!(day_end("2026-12-07"), Some(END + 86_400));
        assert_eq!(day_end("2026-02-30"), None);
    }

    #[test]
    fn a_day_is_reported_after_it_ends_within_the_spread() {
        let mut book = Book::default();
        assert!(
            !book.add(DAY, "a.test", END - 1, 0.5),
            "the day is not over"
        );
        assert!(book.add(DAY, "a.test", END, 0.5));
        assert!(!book.add(DAY, "a.test", END, 0.9), "noted once");
        let due = END + SPREAD / 2;
        assert!(book.due(due - 1).is_empty());
        assert_eq!(book.due(due), vec![(DAY.to_string(), "a.test".to_string())]);
        assert_eq!(book.next_wake(), Some(due));
        assert_eq!(book.tried(DAY, "a.test", due, vec![]), None);
        assert!(book.due(due + 10 * GIVE_UP).is_empty(), "sent: never again");
        assert_eq!(book.next_wake(), None);
    }

    #[test]
    fn failing_destinations_back_off_and_are_given_up_after_a_day() {
        let mut book = Book::default();
        book.add(DAY, "a.test", END, 0.0);
        let uri = vec!["https://r.test/".to_string()];
        let mut now = END;
        let mut waits = Vec::new();
        loop {
            assert_eq!(book.due(now).len(), 1);
            if let Some(given_up) = book.tried(DAY, "a.test", now, uri.clone()) {
                assert_eq!(given_up, uri);
                break;
            }
            let next = book.next_wake().unwrap();
            waits.push(next - now);
            now = next;
            assert!(waits.len() < 100, "bounded");
        }
        assert_eq!(&waits[..4], &[300, 900, 1800, 3600]);
        assert!(now - END <= GIVE_UP && now - END > GIVE_UP - 3600);
        assert!(book.due(now + GIVE_UP).is_empty());
    }

    #[test]
    fn old_days_are_pruned() {
        let mut book = Book::default();
        book.add(DAY, "a.test", END, 0.0);
        book.add("2026-12-05", "a.test", END, 0.0);
        book.prune(END);
        assert_eq!(book.entries.keys().collect::<Vec<_>>(), vec![DAY]);
    }
}
