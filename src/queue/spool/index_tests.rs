//! The index's reading of segments: which records count.

use super::*;
use crate::queue::spool::record::{self, message};

#[test]
fn done_records_remove_and_later_copies_win() {
    let mut segment = message("A", b"one");
    segment.extend(message("B", b"two"));
    segment.extend(record::done("A", 1));
    segment.extend(message("B", b"two again"));
    segment.extend([0; 64]);
    let mut index = Index::default();
    let mut report = ScanReport::default();
    index.take_in(1, &segment, &mut report);
    assert!(!index.contains("A"));
    let b = index
        .message("B")
        .unwrap_or_else(|| panic!("not indexed"))
        .message;
    assert_eq!(b.offset as usize, segment.len() - 64 - b.len as usize);
    let usage = index.segments[&1];
    assert_eq!(usage.live, 1);
    assert_eq!(usage.live_bytes, u64::from(b.len));
    assert_eq!((report.torn, report.damaged.len()), (0, 0));
    let found: Vec<_> = report
        .found
        .iter()
        .map(|(id, f)| (id.to_string(), *f))
        .collect();
    let due_now = Some(record::Summary::default());
    assert_eq!(
        found,
        [(
            "B".to_string(),
            Found {
                arrived: 1_700_000_000,
                summary: due_now
            }
        )]
    );
}

#[test]
fn damage_in_the_middle_is_skipped_and_reported_a_torn_tail_is_not_kept() {
    let first = message("A", b"one");
    let mut segment = first.clone();
    segment.extend(message("B", b"two"));
    let b_at = first.len();
    segment[b_at + 27] ^= 1; // B's payload: checksum fails
    segment.extend(message("C", b"three"));
    let whole = segment.len();
    segment.extend(&message("D", b"four")[..20]);
    let mut index = Index::default();
    let mut report = ScanReport::default();
    index.take_in(3, &segment, &mut report);
    let mut ids: Vec<_> = index.ids().collect();
    ids.sort();
    assert_eq!(ids, ["A", "C"]);
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].1 as usize, b_at);
    // Counted up to its last byte that is not zero.
    assert!(report.torn > 0 && report.torn <= (segment.len() - whole) as u64);
}

fn scanned(segments: &[&[u8]]) -> Index {
    let mut index = Index::default();
    let mut report = ScanReport::default();
    for (n, bytes) in segments.iter().enumerate() {
        index.take_in(n as u32 + 1, bytes, &mut report);
    }
    index
}

fn json(index: &Index, segments: &[&[u8]], id: &str) -> Option<String> {
    let loc = index.state_of(id)?;
    let bytes = segments[loc.segment as usize - 1];
    let at = loc.offset as usize;
    let record = record::parse(&bytes[at..at + loc.len as usize]).ok()?;
    assert_eq!((record.kind, record.id), (Kind::State, id));
    Some(String::from_utf8_lossy(record.payload).into_owned())
}

#[test]
fn the_last_state_after_a_message_wins_and_a_done_record_drops_both() {
    let mut one = message("A", b"one");
    one.extend(record::state("A", record::Summary::default(), b"first"));
    one.extend(message("B", b"two"));
    let mut two = record::state("A", record::Summary::default(), b"second");
    two.extend(record::state("B", record::Summary::default(), b"of B"));
    two.extend(record::done("B", 1));
    let index = scanned(&[&one, &two]);
    assert_eq!(json(&index, &[&one, &two], "A").as_deref(), Some("second"));
    assert!(!index.contains("B"));
    assert_eq!(index.state_of("B"), None);
    // Segment 1: A's message counts, its first state no longer, B is done.
    let a = index.message("A").unwrap_or_else(|| panic!("not indexed"));
    assert_eq!(index.segments[&1].live, 1);
    assert_eq!(index.segments[&1].live_bytes, u64::from(a.message.len));
    let state = a.state().unwrap_or_else(|| panic!("no state"));
    assert_eq!((state.segment, index.segments[&2].live), (2, 1));
    assert_eq!(index.segments[&2].live_bytes, u64::from(state.len));
    assert_eq!(index.segments[&2].bytes, two.len() as u64);
}

#[test]
fn a_state_of_a_message_not_queued_is_ignored() {
    // C was done before its late state; D's message is in a damaged stretch.
    let mut segment = message("C", b"three");
    segment.extend(record::done("C", 1));
    segment.extend(record::state("C", record::Summary::default(), b"late"));
    let d = message("D", b"four");
    let mut damaged = d.clone();
    damaged[30] ^= 1;
    segment.extend(damaged);
    segment.extend(record::state("D", record::Summary::default(), b"orphan"));
    let mut index = scanned(&[&segment]);
    // Recovery keeps states only for messages in files still there.
    index.retain_file_states(|_| false);
    assert_eq!((index.state_of("C"), index.state_of("D")), (None, None));
    assert_eq!(index.ids().count(), 0);
    assert_eq!(index.segments[&1].live, 0);
    assert!(index.worth_reclaiming(1));
}

#[test]
fn a_state_saved_and_removed_before_it_is_written_is_dead() {
    let mut index = scanned(&[&message("E", b"five")]);
    let save = index.state_saved("E", b"one".to_vec());
    let later = index.state_saved("E", b"two".to_vec());
    let at = |offset| Loc {
        segment: 2,
        offset,
        len: 40,
    };
    index.state_written("E", save, at(0));
    // The later save is still unwritten: a load finds it.
    assert_eq!(index.unwritten["E"], (later, b"two".to_vec()));
    assert_eq!(index.state_of("E"), Some(at(0)));
    index.remove("E");
    index.state_written("E", later, at(40));
    assert_eq!(index.state_of("E"), None);
    assert!(index.unwritten.is_empty());
    assert_eq!(index.segments[&2].live, 0);
}

/// What the index costs per message in a segment, besides the id's own
/// allocation: 48 bytes a slot of the map (40 before states were kept).
#[test]
fn a_message_s_slot_in_the_index_stays_small() {
    assert_eq!(std::mem::size_of::<Loc>(), 12);
    assert_eq!(std::mem::size_of::<Entry>(), 24);
    assert_eq!(std::mem::size_of::<(String, Entry)>(), 48);
}
