//! The DATA receiver (src/smtp/data.rs). Asserts, for any input, in both
//! `bare_lf` modes and with a small or no size limit:
//!
//! * the outcome (content, status, bytes consumed, size, Received count)
//!   is the same whole, split at an arbitrary point, and byte by byte;
//! * it never consumes more than it is given, and all of it unless done;
//! * the content is CRLF-only (no bare CR or LF ever reaches the spool),
//!   at most the limit, and whole when not too large;
//! * a complete message within the limit ends in CRLF (or is empty); under `reject`
//!   the consumed bytes hold no bare CR or LF and end in `.CRLF`, so no
//!   smuggled end-of-data was taken;
//! * our client's dot-stuffing of the content gives it back (round trip);
//! * a NUL in the content is noted (the session refuses such a message).
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use tlsrelay::smtp::data::{BareLf, DataReceiver, DataStatus};
use tlsrelay::smtp::stuff::dot_stuff;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    content: Vec<u8>,
    status: DataStatus,
    used: usize,
    size: u64,
    too_large: bool,
    received: usize,
    nul: bool,
}

fn run(input: &[u8], bare_lf: BareLf, limit: u64, cuts: &[usize]) -> Outcome {
    let mut receiver = DataReceiver::new(bare_lf, limit);
    let mut content = Vec::new();
    let mut used = 0;
    let mut status = DataStatus::NeedMore;
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        let piece = &input[start..end];
        start = end;
        let (n, s) = receiver.feed(piece, &mut content);
        assert!(n <= piece.len(), "consumed {n} of {}", piece.len());
        used += n;
        status = s;
        if status != DataStatus::NeedMore {
            break;
        }
        assert_eq!(n, piece.len(), "NeedMore without consuming everything");
    }
    Outcome {
        content,
        status,
        used,
        size: receiver.content.size(),
        too_large: receiver.content.too_large(),
        received: receiver.content.received_headers(),
        nul: receiver.content.has_nul(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, split, input)) = common::header(data) else {
        return;
    };
    let bare_lf = match selector & 1 {
        0 => BareLf::Reject,
        _ => BareLf::Normalize,
    };
    let limit = match selector & 2 {
        0 => u64::MAX,
        _ => 64,
    };
    let whole = run(input, bare_lf, limit, &[]);
    assert_eq!(
        run(input, bare_lf, limit, &[split]),
        whole,
        "split at {split}"
    );
    let bytes = common::every_byte(input.len());
    if !bytes.is_empty() {
        assert_eq!(run(input, bare_lf, limit, &bytes), whole, "byte by byte");
    }

    let content = &whole.content;
    assert!(
        common::crlf_only(content),
        "bare CR/LF in content {content:?}"
    );
    assert!(content.len() as u64 <= limit);
    assert_eq!(whole.too_large, whole.size > limit);
    if !whole.too_large {
        assert_eq!(content.len() as u64, whole.size);
        // A NUL is noted wherever it is (the session refuses the message).
        assert_eq!(whole.nul, content.contains(&0));
    }
    if whole.status != DataStatus::Complete {
        return;
    }
    if !whole.too_large {
        assert!(
            content.is_empty() || content.ends_with(b"\r\n"),
            "{content:?}"
        );
    }
    if bare_lf == BareLf::Reject {
        let taken = &input[..whole.used];
        assert!(common::crlf_only(taken), "end found in {taken:?}");
        assert!(
            taken == b".\r\n" || taken.ends_with(b"\r\n.\r\n"),
            "{taken:?}"
        );
    }
    if !whole.too_large {
        let wire = dot_stuff(content);
        let again = run(&wire, BareLf::Reject, u64::MAX, &[]);
        assert_eq!(again.status, DataStatus::Complete, "{wire:?}");
        assert_eq!(again.used, wire.len());
        assert_eq!(&again.content, content, "round trip of {wire:?}");
    }
});
