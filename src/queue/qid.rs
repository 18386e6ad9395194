//! Queue ids kept small, and tables keyed by them.
//!
//! A queue holds up to millions of deferred messages, and the manager
//! and the spool's index each keep a few bytes about every one of them
//! (issue 18: at most 64 bytes a message in all). A `String` id alone
//! costs 24 bytes plus a heap block, and a `HashMap` entry as much again
//! in spare slots, so both keep their per-message data in an [`IdMap`]:
//! a vector sorted by [`Qid`], 12 bytes a key, with no spare slots.
//!
//! Every id [`Spool`](super::spool::Spool) hands out is 18 upper-case
//! hex digits (72 bits), packed into the key as a number, so keys sort as
//! the ids do, which is the order of arrival: new messages go at the end
//! of the vector. Any other id ([`valid_id`](super::spool::valid_id)
//! allows letters and digits: a file an administrator put in `queue/`,
//! tests) is interned once in a process-wide table and stays there; the
//! relay itself never makes one.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, OnceLock};

/// A queue id in 12 bytes. Word 0 holds the top 8 bits of a packed id,
/// or [`INTERNED`] and word 1 the number of an interned one; bit 30 of
/// word 0 is free for [`IdMap`] to mark a removed entry.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Qid([u32; 3]);

const INTERNED: u32 = 1 << 31;
const REMOVED: u32 = 1 << 30;

#[derive(Default)]
struct Interner {
    names: Vec<Box<str>>,
    numbers: HashMap<Box<str>, u32>,
}

fn interner() -> std::sync::MutexGuard<'static, Interner> {
    static TABLE: OnceLock<Mutex<Interner>> = OnceLock::new();
    TABLE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Qid {
    /// The key of `id`.
    pub fn of(id: &str) -> Qid {
        match packed(id) {
            Some(value) => Qid([(value >> 64) as u32, (value >> 32) as u32, value as u32]),
            None => {
                let mut table = interner();
                let next = u32::try_from(table.names.len()).unwrap_or(u32::MAX);
                let n = *table.numbers.entry(id.into()).or_insert(next);
                if n == next {
                    table.names.push(id.into());
                }
                Qid([INTERNED, n, 0])
            }
        }
    }

    fn without_mark(self) -> Qid {
        Qid([self.0[0] & !REMOVED, self.0[1], self.0[2]])
    }

    fn removed(self) -> bool {
        self.0[0] & REMOVED != 0
    }
}

/// The value of an id made of exactly 18 upper-case hex digits.
fn packed(id: &str) -> Option<u128> {
    let hex = |b: &u8| b.is_ascii_digit() || (b'A'..=b'F').contains(b);
    if id.len() != 18 || !id.as_bytes().iter().all(hex) {
        return None;
    }
    u128::from_str_radix(id, 16).ok()
}

impl fmt::Display for Qid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [top, middle, low] = self.without_mark().0;
        if top & INTERNED == 0 {
            let value = (u128::from(top) << 64) | (u128::from(middle) << 32) | u128::from(low);
            return write!(f, "{value:018X}");
        }
        let table = interner();
        f.write_str(table.names.get(middle as usize).map_or("", |s| s))
    }
}

impl fmt::Debug for Qid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Qid({self})")
    }
}

/// A map from queue ids to small `Copy` values, kept as a vector sorted
/// by key: an entry costs the key and the value, nothing more. A new key
/// above every other (the usual case: ids grow with time) is appended; a
/// removal marks the entry, and the marked ones are dropped once they
/// outnumber the rest. The rare key that would go in the middle (an id
/// of an earlier run taken in by recovery while this run's ids arrive,
/// or a clock set back) goes to a small ordered side map instead, merged
/// in at the next clean-up.
pub struct IdMap<V> {
    sorted: Vec<(Qid, V)>,
    side: BTreeMap<Qid, V>,
    removed: usize,
    /// No live entry of `sorted` is before this one.
    first: usize,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            sorted: Vec::new(),
            side: BTreeMap::new(),
            removed: 0,
            first: 0,
        }
    }
}

impl<V> fmt::Debug for IdMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IdMap({} kept, {} removed, {} aside)",
            self.sorted.len(),
            self.removed,
            self.side.len()
        )
    }
}

impl<V: Copy> IdMap<V> {
    /// How many ids it holds.
    pub fn len(&self) -> usize {
        self.sorted.len() - self.removed + self.side.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where `key` is in `sorted`, removed or not.
    fn find(&self, key: Qid) -> Result<usize, usize> {
        self.sorted
            .binary_search_by(|(k, _)| k.without_mark().cmp(&key))
    }

    pub fn get(&self, key: Qid) -> Option<&V> {
        match self.find(key) {
            Ok(i) if !self.sorted[i].0.removed() => Some(&self.sorted[i].1),
            _ => self.side.get(&key),
        }
    }

    pub fn get_mut(&mut self, key: Qid) -> Option<&mut V> {
        match self.find(key) {
            Ok(i) if !self.sorted[i].0.removed() => Some(&mut self.sorted[i].1),
            _ => self.side.get_mut(&key),
        }
    }

    pub fn contains(&self, key: Qid) -> bool {
        self.get(key).is_some()
    }

    /// Puts `value` under `key`; returns the value it replaced.
    pub fn insert(&mut self, key: Qid, value: V) -> Option<V> {
        match self.find(key) {
            Ok(i) => {
                let entry = &mut self.sorted[i];
                if entry.0.removed() {
                    entry.0 = key;
                    entry.1 = value;
                    self.removed -= 1;
                    self.first = self.first.min(i);
                    None
                } else {
                    Some(std::mem::replace(&mut entry.1, value))
                }
            }
            Err(i) if i == self.sorted.len() => {
                self.sorted.push((key, value));
                None
            }
            Err(_) => {
                let old = self.side.insert(key, value);
                if self.side.len() > 1024 && self.side.len() * 8 > self.sorted.len() {
                    self.tidy();
                }
                old
            }
        }
    }

    /// Takes `key` out; returns its value.
    pub fn remove(&mut self, key: Qid) -> Option<V> {
        match self.find(key) {
            Ok(i) if !self.sorted[i].0.removed() => {
                let entry = &mut self.sorted[i];
                entry.0 = Qid([entry.0 .0[0] | REMOVED, entry.0 .0[1], entry.0 .0[2]]);
                let value = entry.1;
                self.removed += 1;
                if self.removed > 64 && self.removed * 2 > self.sorted.len() {
                    self.tidy();
                }
                Some(value)
            }
            _ => self.side.remove(&key),
        }
    }

    /// Drops the removed entries and merges the side map in.
    fn tidy(&mut self) {
        self.sorted.retain(|(k, _)| !k.removed());
        if !self.side.is_empty() {
            self.sorted.extend(std::mem::take(&mut self.side));
            self.sorted.sort_unstable_by_key(|(k, _)| *k);
        }
        if self.sorted.capacity() > 2 * self.sorted.len() + 1024 {
            self.sorted.shrink_to(self.sorted.len() * 5 / 4);
        }
        self.removed = 0;
        self.first = 0;
    }

    /// Puts many entries in at once (recovery): one sort, not one
    /// insertion each.
    pub fn extend(&mut self, entries: impl IntoIterator<Item = (Qid, V)>) {
        for (key, value) in entries {
            match self.find(key) {
                Ok(i) if !self.sorted[i].0.removed() => self.sorted[i].1 = value,
                Err(i) if i == self.sorted.len() => self.sorted.push((key, value)),
                _ => {
                    self.side.insert(key, value);
                }
            }
        }
        self.tidy();
    }

    /// The entry with the smallest key (with the relay's ids, the oldest).
    pub fn first(&mut self) -> Option<(Qid, V)> {
        while self.first < self.sorted.len() && self.sorted[self.first].0.removed() {
            self.first += 1;
        }
        let head = self.sorted.get(self.first).map(|&(k, v)| (k, v));
        let side = self.side.first_key_value().map(|(&k, &v)| (k, v));
        match (head, side) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// Changes every value in place.
    pub fn for_each_mut(&mut self, mut change: impl FnMut(Qid, &mut V)) {
        for (k, v) in self.sorted.iter_mut().filter(|(k, _)| !k.removed()) {
            change(*k, v);
        }
        for (k, v) in self.side.iter_mut() {
            change(*k, v);
        }
    }

    /// Every entry, in no promised order.
    pub fn iter(&self) -> impl Iterator<Item = (Qid, &V)> {
        self.sorted
            .iter()
            .filter(|(k, _)| !k.removed())
            .map(|(k, v)| (*k, v))
            .chain(self.side.iter().map(|(k, v)| (*k, v)))
    }
}

#[cfg(test)]
#[path = "qid_tests.rs"]
mod tests;
