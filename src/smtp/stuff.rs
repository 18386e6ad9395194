//! Dot-stuffing for the client side (RFC 5321 §4.5.2): content on the wire
//! after DATA, ending with `CRLF . CRLF`. Every line ending becomes CRLF,
//! so a bare CR or LF never leaves us (the smuggling defence, outbound).

/// `content` as DATA sends it, terminator included.
pub fn dot_stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 64 + 5);
    let mut rest = content;
    let mut at_line_start = true;
    // Line by line: the bytes up to the next CR or LF go in one piece.
    while let Some(&first) = rest.first() {
        if at_line_start && first == b'.' {
            out.push(b'.');
        }
        match memchr::memchr2(b'\r', b'\n', rest) {
            None => {
                out.extend_from_slice(rest);
                at_line_start = false;
                rest = &[];
            }
            Some(end) => {
                out.extend_from_slice(&rest[..end]);
                out.extend_from_slice(b"\r\n");
                // CRLF, a bare CR or a bare LF: each is one line end.
                let crlf = rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n');
                rest = &rest[end + if crlf { 2 } else { 1 }..];
                at_line_start = true;
            }
        }
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::dot_stuff;
    use crate::smtp::data::{BareLf, DataReceiver, DataStatus};

    /// What our own server makes of what our client sends.
    fn round_trip(content: &[u8]) -> Vec<u8> {
        let wire = dot_stuff(content);
        let mut receiver = DataReceiver::new(BareLf::Reject, u64::MAX);
        let mut out = Vec::new();
        let (used, status) = receiver.feed(&wire, &mut out);
        assert_eq!(status, DataStatus::Complete, "{wire:?}");
        assert_eq!(used, wire.len());
        out
    }

    #[test]
    fn stuffs_leading_dots_and_terminates() {
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(dot_stuff(b"a\r\n.b\r\n.\r\n"), b"a\r\n..b\r\n..\r\n.\r\n");
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n");
    }

    #[test]
    fn bare_line_endings_become_crlf() {
        assert_eq!(dot_stuff(b"a\nb\rc\r\n.\n"), b"a\r\nb\r\nc\r\n..\r\n.\r\n");
    }

    #[test]
    fn our_server_gets_back_what_our_client_sent() {
        for content in [
            &b"Subject: x\r\n\r\n.\r\n..\r\n...dots\r\nend\r\n"[..],
            b"\r\n",
            b".",
            b"x\r\n.\r\n.\r\n",
        ] {
            let mut expected = content.to_vec();
            if !expected.ends_with(b"\r\n") {
                expected.extend_from_slice(b"\r\n");
            }
            assert_eq!(round_trip(content), expected, "{content:?}");
        }
    }
}
