//! Dot-stuffing for the client side (RFC 5321 §4.5.2): content on the wire
//! after DATA, ending with `CRLF . CRLF`. Every line ending becomes CRLF,
//! so a bare CR or LF never leaves us (the smuggling defence, outbound).
//!
//! [`Stuffer`] does it a piece at a time, so a large message goes out as
//! it is read from the spool, never held whole; [`dot_stuff`] is the same
//! on content in one piece. [`Stuffer::for_chunks`] is the same without
//! the dots, for BDAT (RFC 3030), whose chunks end by their size: the
//! line endings leave as CRLF whichever way the content goes.

/// `content` as DATA sends it, terminator included.
pub fn dot_stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 64 + 5);
    let mut stuffer = Stuffer::default();
    stuffer.stuff(content, &mut out);
    stuffer.finish(&mut out);
    out
}

/// Dot-stuffing of content that comes in pieces: what it appends for the
/// pieces one after the other is what [`dot_stuff`] makes of them
/// joined, wherever they are cut (through a CRLF included). It carries
/// what one piece's end says about the next piece's start.
#[derive(Clone, Copy, Debug)]
pub struct Stuffer {
    /// The next byte starts a line (a dot there is doubled).
    at_line_start: bool,
    /// The last piece ended with a CR, already sent as CRLF: an LF
    /// first in the next piece is its other half, not a line of its own.
    after_cr: bool,
    /// A dot first on a line is doubled (DATA), or left alone (BDAT).
    dots: bool,
}

impl Default for Stuffer {
    fn default() -> Self {
        Stuffer {
            at_line_start: true,
            after_cr: false,
            dots: true,
        }
    }
}

impl Stuffer {
    /// For BDAT chunks: line endings made CRLF, no dot doubled; the
    /// content ends with [`end_line`](Self::end_line), not a `.` line.
    pub fn for_chunks() -> Self {
        Stuffer {
            dots: false,
            ..Stuffer::default()
        }
    }

    /// Appends `piece`, stuffed, to `out`.
    pub fn stuff(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        let mut rest = piece;
        if rest.is_empty() {
            return;
        }
        if std::mem::take(&mut self.after_cr) {
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        // Line by line: the bytes up to the next CR or LF go in one piece.
        while let Some(&first) = rest.first() {
            if self.dots && self.at_line_start && first == b'.' {
                out.push(b'.');
            }
            match memchr::memchr2(b'\r', b'\n', rest) {
                None => {
                    out.extend_from_slice(rest);
                    self.at_line_start = false;
                    rest = &[];
                }
                Some(end) => {
                    out.extend_from_slice(&rest[..end]);
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                    // CRLF, a bare CR or a bare LF: each is one line end.
                    // A CR last in the piece may have its LF in the next.
                    let crlf = rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n');
                    self.after_cr = rest[end] == b'\r' && end + 1 == rest.len();
                    rest = &rest[end + if crlf { 2 } else { 1 }..];
                }
            }
        }
    }

    /// Appends the end of the content: a line end if the last line has
    /// none, then the terminating `.` line.
    pub fn finish(self, out: &mut Vec<u8>) {
        self.end_line(out);
        out.extend_from_slice(b".\r\n");
    }

    /// Appends a line end if the last line has none.
    pub fn end_line(self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{dot_stuff, Stuffer};
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

    /// `content` stuffed in the pieces that `cuts` make.
    fn stuffed_in_pieces(content: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut stuffer = Stuffer::default();
        let mut out = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&content.len())) {
            stuffer.stuff(&content[start..end], &mut out);
            start = end;
        }
        stuffer.finish(&mut out);
        out
    }

    #[test]
    fn any_cut_gives_what_the_whole_gives() {
        let samples: [&[u8]; 6] = [
            b"a\r\n.b\r\n.\r\n..\r\nend",
            b"\r\n\r\n.\r\n",
            b"x\r\r\n\n.\r.\n.",
            b".\r",
            b"\r\n.",
            b"no line end at all",
        ];
        for content in samples {
            let whole = dot_stuff(content);
            for one in 0..=content.len() {
                assert_eq!(
                    stuffed_in_pieces(content, &[one]),
                    whole,
                    "{content:?} cut at {one}"
                );
                for two in one..=content.len() {
                    let pieces = stuffed_in_pieces(content, &[one, two]);
                    assert_eq!(pieces, whole, "{content:?} cut at {one} and {two}");
                }
            }
        }
    }

    #[test]
    fn an_empty_piece_between_cr_and_lf_keeps_them_one_line_end() {
        assert_eq!(
            stuffed_in_pieces(b"a\r\n.b", &[2, 2, 2]),
            b"a\r\n..b\r\n.\r\n"
        );
    }
}
