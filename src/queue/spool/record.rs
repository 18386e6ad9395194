//! One record of a spool segment (see "Segments" in [`spool`](super)):
//! how it is laid out, written and checked. Pure: bytes in, bytes out.
//!
//! ```text
//! offset  size  field
//!  0      4     magic "TRS\x01" (the last byte is the format version)
//!  4      4     length of what follows the checksum (kind .. payload), LE
//!  8      4     CRC-32 of those bytes, LE
//! 12      1     kind: 1 message, 2 done, 3 state
//! 13      1     length of the queue id
//! 14      8     message: Unix time of the commit; state: see `target`;
//!               done: 0 (LE)
//! 22      4     done: the segment holding the message; state: 0 (written
//!               before issue 18's compact recovery: `time` is when it was
//!               saved) or a summary, bit 0 set: `time` is the next
//!               attempt's Unix time and bit 1 says the message is held,
//!               so recovery schedules it without reading the JSON;
//!               message: 0 (LE)
//! 26      n     the queue id (ASCII letters and digits)
//! 26+n    ...   message: the message as a spool file holds it (the line
//!               `tlsrelay-spool 1`, the envelope, the content); state:
//!               the message's delivery state as JSON (`queue::state`);
//!               done: none
//! ```
//!
//! A segment is records back to back, then zeros (space allocated ahead):
//! a zero magic ends it. Anything else that does not check is a torn or
//! damaged record.

/// The first bytes of every record.
pub(super) const MAGIC: [u8; 4] = *b"TRS\x01";
/// Bytes before the id.
pub(super) const HEAD: usize = 26;
/// The part of the head the checksum does not cover.
pub(super) const FRAME: usize = 12;
/// No record is larger: a message past the spool's memory limit goes to
/// a file of its own, never into a segment.
pub(super) const MAX_RECORD: usize = 64 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Message = 1,
    Done = 2,
    /// The delivery state of a queued message; the latest one counts.
    State = 3,
}

/// What the manager needs of a delivery state to schedule its message:
/// kept in the head of a state record (see the layout above).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Unix time of the next attempt (0: at once).
    pub next_attempt: i64,
    /// On hold: never scheduled.
    pub held: bool,
}

/// State record `target` bits: the head holds a [`Summary`]; it is held.
const SUMMARY: u32 = 1;
const HELD: u32 = 2;

/// The summary in the head of state record `record`, when it has one.
pub(super) fn summary(record: &Record<'_>) -> Option<Summary> {
    (record.kind == Kind::State && record.target & SUMMARY != 0).then_some(Summary {
        next_attempt: record.time,
        held: record.target & HELD != 0,
    })
}

/// A record read back and checked.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Record<'a> {
    pub(super) kind: Kind,
    pub(super) id: &'a str,
    pub(super) time: i64,
    pub(super) target: u32,
    pub(super) payload: &'a [u8],
    /// The whole record's length, head included.
    pub(super) len: usize,
}

/// Why bytes at an offset are not a record.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Bad {
    /// Zeros where the next record would start: the segment ends here.
    End,
    /// Fewer bytes than the head announces: more must be read (or the
    /// segment ends in the middle of a record).
    Short { need: usize },
    /// Bytes that are not a whole, checked record.
    Damaged(&'static str),
}

/// The head of a record for `id` with room for a payload of `payload`
/// bytes after it; [`seal`] fills in length and checksum once the payload
/// is in place.
pub(super) fn head(kind: Kind, id: &str, time: i64, target: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD + id.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0; 8]);
    out.push(kind as u8);
    out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&time.to_le_bytes());
    out.extend_from_slice(&target.to_le_bytes());
    out.extend_from_slice(&id.as_bytes()[..id.len().min(255)]);
    out
}

/// Fills in the length and checksum of the record that `bytes` holds whole.
pub(super) fn seal(bytes: &mut [u8]) {
    let body = &bytes[FRAME..];
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(body);
    bytes[4..8].copy_from_slice(&len.to_le_bytes());
    bytes[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// The record saying message `id` (kept in segment `target`) left the queue.
pub(super) fn done(id: &str, target: u32) -> Vec<u8> {
    let mut bytes = head(Kind::Done, id, 0, target);
    seal(&mut bytes);
    bytes
}

/// The record holding `json`, the delivery state of message `id`, with
/// its summary in the head.
pub(super) fn state(id: &str, summary: Summary, json: &[u8]) -> Vec<u8> {
    let flags = SUMMARY | if summary.held { HELD } else { 0 };
    let mut bytes = head(Kind::State, id, summary.next_attempt, flags);
    bytes.extend_from_slice(json);
    seal(&mut bytes);
    bytes
}

/// The record at the start of `bytes`, checked.
pub(super) fn parse(bytes: &[u8]) -> Result<Record<'_>, Bad> {
    if bytes.len() < FRAME {
        return match bytes.iter().all(|&b| b == 0) {
            true => Err(Bad::End),
            false => Err(Bad::Short { need: FRAME }),
        };
    }
    if bytes[..4] != MAGIC {
        return match bytes[..FRAME].iter().all(|&b| b == 0) {
            true => Err(Bad::End),
            false => Err(Bad::Damaged("no record starts here")),
        };
    }
    let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if !(HEAD - FRAME..=MAX_RECORD).contains(&len) {
        return Err(Bad::Damaged("impossible record length"));
    }
    let total = FRAME + len;
    if bytes.len() < total {
        return Err(Bad::Short { need: total });
    }
    let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if crc32fast::hash(&bytes[FRAME..total]) != crc {
        return Err(Bad::Damaged("checksum mismatch"));
    }
    let kind = match bytes[12] {
        1 => Kind::Message,
        2 => Kind::Done,
        3 => Kind::State,
        _ => return Err(Bad::Damaged("unknown record kind")),
    };
    let id_len = bytes[13] as usize;
    let number = |at: usize| {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(&bytes[at..at + 8]);
        i64::from_le_bytes(eight)
    };
    let target = u32::from_le_bytes([bytes[22], bytes[23], bytes[24], bytes[25]]);
    let id = bytes
        .get(HEAD..HEAD + id_len)
        .filter(|_| HEAD + id_len <= total)
        .and_then(|id| std::str::from_utf8(id).ok())
        .filter(|id| super::valid_id(id))
        .ok_or(Bad::Damaged("no valid queue id"))?;
    Ok(Record {
        kind,
        id,
        time: number(14),
        target,
        payload: &bytes[HEAD + id_len..total],
        len: total,
    })
}

/// Where the next record may start after damage at `from`: the next
/// offset holding the magic, if any.
pub(super) fn resync(bytes: &[u8], from: usize) -> Option<usize> {
    let start = from + 1;
    bytes
        .get(start..)?
        .windows(MAGIC.len())
        .position(|w| w == MAGIC)
        .map(|p| start + p)
}

/// What [`walk`] meets in a segment.
pub(super) enum Step<'a> {
    /// A whole, checked record at this offset.
    Record(u64, Record<'a>),
    /// Bytes at this offset that are no record, with a record after them.
    Damaged(u64, &'a [u8]),
    /// So many bytes at the end that were never a whole record.
    Torn(u64),
}

/// Every record of a segment's `bytes` in order, and what is not one.
pub(super) fn walk<'a>(bytes: &'a [u8], mut each: impl FnMut(Step<'a>)) {
    let mut at = 0;
    while at < bytes.len() {
        match parse(&bytes[at..]) {
            Ok(record) => {
                let len = record.len;
                each(Step::Record(at as u64, record));
                at += len;
            }
            Err(Bad::End) => return,
            Err(Bad::Short { .. }) | Err(Bad::Damaged(_)) => {
                let mut next = resync(bytes, at);
                while let Some(candidate) = next {
                    if parse(&bytes[candidate..]).is_ok() {
                        break;
                    }
                    next = resync(bytes, candidate);
                }
                match next {
                    Some(next) => {
                        each(Step::Damaged(at as u64, &bytes[at..next]));
                        at = next;
                    }
                    None => {
                        let rest = &bytes[at..];
                        let used = rest.len() - rest.iter().rev().take_while(|&&b| b == 0).count();
                        each(Step::Torn(used as u64));
                        return;
                    }
                }
            }
        }
    }
}

/// A sealed message record, for tests.
#[cfg(test)]
pub(super) fn message(id: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = head(Kind::Message, id, 1_700_000_000, 0);
    bytes.extend_from_slice(payload);
    seal(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let bytes = message("ABC123", b"tlsrelay-spool 1\n{}\nhello");
        let record = parse(&bytes).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(record.kind, Kind::Message);
        assert_eq!(record.id, "ABC123");
        assert_eq!(record.time, 1_700_000_000);
        assert_eq!(record.payload, b"tlsrelay-spool 1\n{}\nhello");
        assert_eq!(record.len, bytes.len());
        let done = done("ABC123", 7);
        let record = parse(&done).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (record.kind, record.target, record.payload),
            (Kind::Done, 7, &[][..])
        );
        let summary = Summary {
            next_attempt: 1_800_000_000,
            held: true,
        };
        let state = state("ABC123", summary, br#"{"attempts":1}"#);
        let record = parse(&state).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (
                record.kind,
                record.id,
                super::summary(&record),
                record.payload
            ),
            (
                Kind::State,
                "ABC123",
                Some(summary),
                &br#"{"attempts":1}"#[..]
            )
        );
    }

    #[test]
    fn zeros_end_a_segment_and_every_cut_or_flip_is_caught() {
        assert_eq!(parse(&[0; 40]), Err(Bad::End));
        assert_eq!(parse(&[]), Err(Bad::End));
        let bytes = message("Q1", b"tlsrelay-spool 1\n{}\nbody");
        for cut in 1..bytes.len() {
            assert!(
                matches!(parse(&bytes[..cut]), Err(Bad::Short { .. }) | Err(Bad::End)),
                "cut at {cut}"
            );
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x41;
            assert!(parse(&flipped).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn resync_finds_the_next_magic() {
        let mut bytes = vec![7u8; 10];
        bytes.extend(message("Q2", b"x"));
        assert_eq!(resync(&bytes, 0), Some(10));
        assert_eq!(resync(&bytes, 10), None);
    }
}
