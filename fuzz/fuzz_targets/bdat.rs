//! The BDAT receiver and content accounting (src/smtp/data.rs). The input
//! is cut into BDAT chunks (sizes from the input), each chunk read in two
//! pieces, the last one `LAST`; asserts, for any input, in both `bare_lf`
//! modes and with a small or no size limit:
//!
//! * each chunk takes exactly its size, never more, and says so, unless
//!   a bare line ending stops it under `reject`;
//! * under `reject`, a bare CR or LF in the bytes sent (a CRLF may
//!   straddle two chunks) stops the message, and otherwise the content is
//!   the bytes as sent (BDAT has no stuffing); under `normalize` the
//!   content is the bytes with every bare CR or LF made CRLF;
//! * the content is CRLF-only and within the limit; its size counts
//!   everything; a NUL is noted wherever it is;
//! * the outcome is the same as for the same bytes in one chunk, and
//!   the Received count the same as DATA's accounting gives for them, so
//!   neither the loop guard nor the line-ending rule depends on how a
//!   client chunks.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use tlsrelay::smtp::data::{BareLf, BdatReceiver, Content, DataStatus};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    content: Vec<u8>,
    status: DataStatus,
    size: u64,
    too_large: bool,
    received: usize,
    nul: bool,
}

/// Reads `bytes` as BDAT chunks of `sizes` (the last one `LAST`), each
/// fed in two pieces cut at `split` (modulo the chunk).
fn run(bytes: &[u8], sizes: &[usize], split: usize, bare_lf: BareLf, limit: u64) -> Outcome {
    let mut content = Content::new(limit);
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut status = DataStatus::Complete;
    for (i, &size) in sizes.iter().enumerate() {
        let mut chunk = BdatReceiver::new(size as u64, bare_lf);
        let available = rest.len();
        // The socket gives the chunk and whatever follows it, in two reads.
        let cut = split % (available + 1);
        let (n1, s1) = chunk.feed(&rest[..cut], &mut content, &mut out);
        assert!(n1 <= cut && n1 <= size);
        let (n2, s2) = match s1 {
            DataStatus::NeedMore => chunk.feed(&rest[n1..], &mut content, &mut out),
            _ => (0, s1),
        };
        status = s2;
        if status == DataStatus::BareLineEnding {
            assert_eq!(bare_lf, BareLf::Reject);
            break;
        }
        let taken = n1 + n2;
        assert_eq!(
            taken,
            size.min(available),
            "chunk of {size} from {available}"
        );
        assert_eq!(status == DataStatus::Complete, available >= size, "done");
        rest = &rest[taken..];
        if i + 1 == sizes.len() && status == DataStatus::Complete {
            status = chunk.finish_message(&mut content, &mut out);
        }
    }
    Outcome {
        content: out,
        status,
        size: content.size(),
        too_large: content.too_large(),
        received: content.received_headers(),
        nul: content.has_nul(),
    }
}

/// `bytes` with every bare CR or LF made CRLF: the reference for `normalize`.
fn normalized(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                i += if bytes[i..].starts_with(b"\r\n") {
                    2
                } else {
                    1
                };
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, split, input)) = common::header(data) else {
        return;
    };
    let limit = match selector & 1 {
        0 => u64::MAX,
        _ => 48,
    };
    let bare_lf = match selector & 2 {
        0 => BareLf::Reject,
        _ => BareLf::Normalize,
    };
    // The first byte after the header says how many chunk sizes follow (1..=4),
    // one byte each.
    let Some((&count, input)) = input.split_first() else {
        return;
    };
    let count = usize::from(count % 4) + 1;
    if input.len() < count {
        return;
    }
    let (sizes, body) = input.split_at(count);
    let sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s)).collect();
    let total: usize = sizes.iter().sum();
    if body.len() < total {
        // The chunks never all arrive: only how much each takes is checked.
        run(body, &sizes, split, bare_lf, limit);
        return;
    }
    let sent = &body[..total];

    let outcome = run(body, &sizes, split, bare_lf, limit);
    let expected = match bare_lf {
        BareLf::Reject => sent.to_vec(),
        BareLf::Normalize => normalized(sent),
    };
    let bare = !common::crlf_only(sent);
    assert!(common::crlf_only(&outcome.content), "{:?}", outcome.content);
    assert!(outcome.content.len() as u64 <= limit);
    assert_eq!(outcome.too_large, outcome.size > limit);
    match (bare_lf, bare) {
        (BareLf::Reject, true) => assert_eq!(outcome.status, DataStatus::BareLineEnding),
        _ => {
            assert_eq!(outcome.status, DataStatus::Complete);
            assert_eq!(outcome.size, expected.len() as u64);
            assert_eq!(outcome.nul, expected.contains(&0));
            if !outcome.too_large {
                assert_eq!(outcome.content, expected, "content differs");
            }
        }
    }
    // The same bytes in one chunk.
    let one = run(sent, &[sent.len()], split, bare_lf, limit);
    assert_eq!(one, outcome, "one chunk");
    // The same content byte by byte through the accounting alone.
    if outcome.status == DataStatus::Complete {
        let mut bytewise = Content::new(limit);
        let mut sink = Vec::new();
        for byte in expected.chunks(1) {
            bytewise.push(byte, &mut sink);
        }
        assert_eq!(
            bytewise.received_headers(),
            outcome.received,
            "byte by byte"
        );
    }
});
