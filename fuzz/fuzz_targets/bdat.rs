//! The BDAT receiver and content accounting (src/smtp/data.rs). The input
//! is cut into BDAT chunks (sizes from the input), each chunk read in two
//! pieces; asserts, for any input:
//!
//! * each chunk takes exactly its size, never more, and says so;
//! * the content is the bytes as sent (BDAT has no stuffing), within the
//!   limit; its size counts everything;
//! * the Received count and the limit verdict are the same as for the
//!   same bytes in one chunk, and the same as DATA's accounting gives
//!   for them, so the loop guard does not depend on how a client chunks.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use tlsrelay::smtp::data::{BdatReceiver, Content};

/// Reads `bytes` as BDAT chunks of `sizes`, each fed in two pieces cut at
/// `split` (modulo the chunk). Returns the content and its accounting.
fn run(bytes: &[u8], sizes: &[usize], split: usize, limit: u64) -> (Vec<u8>, u64, bool, usize) {
    let mut content = Content::new(limit);
    let mut out = Vec::new();
    let mut rest = bytes;
    for &size in sizes {
        let mut chunk = BdatReceiver::new(size as u64);
        let available = rest.len();
        // The socket gives the chunk and whatever follows it, in two reads.
        let cut = split % (available + 1);
        let (n1, done1) = chunk.feed(&rest[..cut], &mut content, &mut out);
        assert!(n1 <= cut && n1 <= size);
        let (n2, done2) = if done1 {
            (0, true)
        } else {
            chunk.feed(&rest[n1..], &mut content, &mut out)
        };
        let taken = n1 + n2;
        assert_eq!(
            taken,
            size.min(available),
            "chunk of {size} from {available}"
        );
        assert_eq!(done2, available >= size, "done");
        rest = &rest[taken..];
    }
    (
        out,
        content.size(),
        content.too_large(),
        content.received_headers(),
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, split, input)) = common::header(data) else {
        return;
    };
    let limit = match selector & 1 {
        0 => u64::MAX,
        _ => 48,
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
    let sent = &body[..total.min(body.len())];

    let (out, size, too_large, received) = run(body, &sizes, split, limit);
    assert_eq!(size, sent.len() as u64);
    assert_eq!(too_large, size > limit);
    if !too_large {
        assert_eq!(out, sent, "content differs from the bytes sent");
    }
    assert!(out.len() as u64 <= limit);
    // The same bytes in one chunk.
    let one = run(sent, &[sent.len()], split, limit);
    assert_eq!(
        (one.1, one.2, one.3),
        (size, too_large, received),
        "one chunk"
    );
    // The same bytes byte by byte through the accounting alone.
    let mut bytewise = Content::new(limit);
    let mut sink = Vec::new();
    for byte in sent.chunks(1) {
        bytewise.push(byte, &mut sink);
    }
    assert_eq!(bytewise.received_headers(), received, "byte by byte");
});
