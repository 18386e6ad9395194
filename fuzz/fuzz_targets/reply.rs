//! The client-side reply reader (src/smtp/reply.rs). Asserts, for any
//! bytes a server might send:
//!
//! * the replies and the first error are the same whole, split at an
//!   arbitrary point, and byte by byte;
//! * the reader never holds more than `MAX_BUFFERED` bytes, and on
//!   `Ok(None)` it has consumed all it was given;
//! * every reply has a code from 200 to 599 and at least one line, its
//!   summary and EHLO reading do not panic.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use tlsrelay::smtp::reply::{Reply, ReplyError, ReplyReader, MAX_BUFFERED};

fn run(input: &[u8], cuts: &[usize]) -> (Vec<Reply>, Option<ReplyError>) {
    let mut reader = ReplyReader::new();
    let mut replies = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        let mut piece = &input[start..end];
        start = end;
        loop {
            let before = piece.len();
            let result = reader.read(&mut piece);
            assert!(
                reader.buffered() <= MAX_BUFFERED,
                "{} bytes buffered",
                reader.buffered()
            );
            match result {
                Ok(Some(reply)) => {
                    assert!(piece.len() < before, "a reply from no input");
                    replies.push(reply);
                }
                Ok(None) => {
                    assert!(piece.is_empty(), "Ok(None) with input left");
                    break;
                }
                Err(error) => return (replies, Some(error)),
            }
        }
    }
    (replies, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((_, split, input)) = common::header(data) else {
        return;
    };
    let whole = run(input, &[]);
    assert_eq!(run(input, &[split]), whole, "split at {split}");
    let bytes = common::every_byte(input.len());
    if !bytes.is_empty() {
        assert_eq!(run(input, &bytes), whole, "byte by byte");
    }
    for reply in &whole.0 {
        assert!((200..600).contains(&reply.code), "{reply:?}");
        assert!(!reply.lines.is_empty());
        let _ = reply.summary();
        let _ = reply.ehlo();
    }
});
