//! EHLO replies as the outbound client reads them: the reply reader, then
//! `Capabilities::from_ehlo` (src/outbound/client.rs) over smtp-proto's
//! EHLO parser. Asserts, for any reply a server might send:
//!
//! * no panic, and an error rather than capabilities for a reply the
//!   parser does not accept;
//! * every capability we act on (STARTTLS, PIPELINING, SIZE, CHUNKING,
//!   DSN, 8BITMIME, SMTPUTF8) is claimed only when a line after the first
//!   begins with its keyword as a word, and is seen whenever a line is
//!   exactly it (lines as sent: `Reply::raw`);
//! * an advertised SIZE is positive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlsrelay::outbound::client::Capabilities;
use tlsrelay::smtp::reply::ReplyReader;

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let Ok(Some(reply)) = ReplyReader::new().read(&mut input) else {
        return;
    };
    if !reply.is_positive() {
        return;
    }
    let Ok(caps) = Capabilities::from_ehlo(&reply) else {
        return;
    };
    assert!(caps.esmtp);
    // The lines after the first as sent, without the `250-` in front and
    // without CR: smtp-proto's EHLO parser skips a CR anywhere (fuzzing
    // found `250 starttl\rs` read as STARTTLS), so the keyword is what
    // remains, from the first non-blank up to the first byte that is not a letter, digit or '-'.
    let raw_lines: Vec<Vec<u8>> = reply
        .raw()
        .split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| line.get(4..))
        .map(|line| {
            // smtp-proto also skips blanks in front of the keyword.
            let line: Vec<u8> = line.iter().copied().filter(|&b| b != b'\r').collect();
            let start = line
                .iter()
                .position(|&b| b != b' ' && b != b'\t')
                .unwrap_or(line.len());
            line[start..].to_vec()
        })
        .collect();
    let keywords: Vec<String> = raw_lines
        .iter()
        .map(|line| {
            let end = line
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-'))
                .unwrap_or(line.len());
            String::from_utf8_lossy(&line[..end]).to_ascii_uppercase()
        })
        .collect();
    // The lines that are exactly a keyword as a server sends one: nothing
    // but the keyword between `250-` and CRLF. Only these must be seen;
    // a keyword behind a tab or a stray CR may be missed (fuzzing found
    // `250-\t\rSMTPUTF8`), which costs an extension, never safety. So
    // may every keyword of a reply with a line ended by a bare LF:
    // smtp-proto reads the next line as part of it (fuzzing found
    // `250-ENHANCEDSTATUSCOD\n250-CHUNKING\r\n` without CHUNKING).
    let all_crlf = reply
        .raw()
        .iter()
        .enumerate()
        .all(|(i, &b)| b != b'\n' || (i > 0 && reply.raw()[i - 1] == b'\r'));
    let whole: Vec<String> = reply
        .raw()
        .split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| line.get(4..))
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .map(|line| String::from_utf8_lossy(line).to_ascii_uppercase())
        .collect();
    for (claimed, keyword) in [
        (caps.starttls, "STARTTLS"),
        (caps.pipelining, "PIPELINING"),
        (caps.size.is_some(), "SIZE"),
        (caps.chunking, "CHUNKING"),
        (caps.dsn, "DSN"),
        (caps.eight_bit, "8BITMIME"),
        (caps.smtputf8, "SMTPUTF8"),
    ] {
        if claimed {
            assert!(
                keywords.iter().any(|k| k == keyword),
                "{keyword} claimed from {:?}",
                reply.lines
            );
        }
        if all_crlf && keyword != "SIZE" && whole.iter().any(|line| line == keyword) {
            assert!(claimed, "{keyword} missed in {:?}", reply.lines);
        }
    }
    if let Some(size) = caps.size {
        assert!(size > 0);
    }
});
