//! How the spool reads a segment at start (`tlsrelay::queue::spool`'s
//! record walk) on any bytes a crash, a bad disk or a hand may leave.
//! Asserts that it never panics and that what it reports is consistent:
//!
//! * steps come in order and never overlap, each within the bytes;
//! * a record's bytes, walked alone, are exactly that one record (the
//!   checksum and length hold on their own);
//! * every record's id is a valid queue id;
//! * nothing follows a torn end;
//! * the bytes before the first step that is not a record, walked alone,
//!   give the same records (a later tear never changes what came before).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlsrelay::queue::spool::{segment_steps, valid_id, SegmentStep};

fuzz_target!(|data: &[u8]| {
    let steps = segment_steps(data);
    let mut at = 0u64;
    let mut records = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        match step {
            SegmentStep::Record { offset, len, kind, id } => {
                assert!(*offset >= at, "{steps:?}");
                let end = *offset as usize + len;
                assert!(end <= data.len());
                assert!((1..=3).contains(kind), "{kind}");
                assert!(valid_id(id), "{id:?}");
                let alone = segment_steps(&data[*offset as usize..end]);
                assert_eq!(alone.len(), 1, "{alone:?}");
                assert!(matches!(&alone[0], SegmentStep::Record { offset: 0, len: l, .. } if l == len));
                at = end as u64;
                records.push((*offset, *len));
            }
            SegmentStep::Damaged { offset, len } => {
                assert!(*offset >= at && *len > 0);
                at = offset + *len as u64;
                assert!(at as usize <= data.len());
            }
            SegmentStep::Torn { bytes } => {
                assert_eq!(n, steps.len() - 1, "a torn end is the end: {steps:?}");
                assert!(at + bytes <= data.len() as u64);
            }
        }
    }
    if let Some(first_bad) = steps.iter().position(|s| !matches!(s, SegmentStep::Record { .. })) {
        let clean = records.get(..first_bad).unwrap_or(&records[..]);
        let end = clean.last().map_or(0, |(o, l)| *o as usize + l);
        let before = segment_steps(&data[..end]);
        assert_eq!(before.len(), clean.len(), "{before:?}");
    }
});
