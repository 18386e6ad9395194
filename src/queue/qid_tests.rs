use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{IdMap, Qid};

#[test]
fn relay_ids_pack_into_numbers_that_sort_as_the_ids_do() {
    let ids = [
        "000000000000000000",
        "620918DDBFF9000001",
        "620918DDBFF9000002",
        "FFFFFFFFFFFFFFFFFF",
    ];
    for pair in ids.windows(2) {
        assert!(Qid::of(pair[0]) < Qid::of(pair[1]));
    }
    for id in ids {
        assert_eq!(Qid::of(id).to_string(), id);
    }
    assert_eq!(std::mem::size_of::<Qid>(), 12);
}

#[test]
fn other_ids_are_interned_and_keep_their_spelling() {
    for id in ["new", "620918ddbff9000001", "620918DDBFF90000011", "Q1"] {
        assert_eq!(Qid::of(id), Qid::of(id));
        assert_eq!(Qid::of(id).to_string(), id);
    }
    assert_ne!(Qid::of("620918ddbff9000001"), Qid::of("620918DDBFF9000001"));
}

#[test]
fn the_first_entry_is_the_smallest_id_left() {
    let mut map = IdMap::default();
    let ids: Vec<String> = (0..200).map(|n| format!("6209{n:014X}")).collect();
    for (n, id) in ids.iter().enumerate() {
        map.insert(Qid::of(id), n);
    }
    for (n, id) in ids.iter().enumerate().take(150) {
        assert_eq!(map.first(), Some((Qid::of(id), n)));
        assert_eq!(map.remove(Qid::of(id)), Some(n));
    }
    // An id below all of them (an earlier run's, found by recovery).
    map.insert(Qid::of("000000000000000001"), 7);
    assert_eq!(map.first().map(|(_, v)| v), Some(7));
    assert_eq!(map.len(), 51);
}

proptest! {
    /// Whatever the order of inserts and removals, the map answers as an
    /// ordered map would.
    #[test]
    fn it_answers_as_a_btreemap(ops in proptest::collection::vec((0u8..3, 0u32..300, any::<u16>()), 0..2000)) {
        let mut map = IdMap::default();
        let mut model = BTreeMap::new();
        for (op, key, value) in ops {
            let id = Qid::of(&format!("{key:018X}"));
            match op {
                0 => prop_assert_eq!(map.insert(id, value), model.insert(id, value)),
                1 => prop_assert_eq!(map.remove(id), model.remove(&id)),
                _ => prop_assert_eq!(map.get(id), model.get(&id)),
            }
            prop_assert_eq!(map.len(), model.len());
        }
        let mut all: Vec<_> = map.iter().map(|(k, v)| (k, *v)).collect();
        all.sort_unstable();
        let expected: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
        prop_assert_eq!(all, expected);
        prop_assert_eq!(map.first(), model.first_key_value().map(|(k, v)| (*k, *v)));
    }
}
