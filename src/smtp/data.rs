//! The DATA receiver (RFC 5321 §4.1.1.4, §4.5.2): turns the bytes after
//! `354` into message content, in any chunking.
//!
//! * Only `CRLF . CRLF` ends the data; the CRLF ending the DATA command
//!   counts as the first, so `.\r\n` right away is an empty message.
//! * A bare LF, or a CR not followed by LF, is never a line end for the
//!   purpose of finding the end: with [`BareLf::Reject`] it stops the
//!   receiver at once (the session answers `521 5.5.2`), with
//!   [`BareLf::Normalize`] it becomes CRLF in the content but a dot after
//!   it is kept as it is. This closes the SMTP smuggling variants
//!   (`\n.\n`, `\r.\r`, `\r\n.\n`, …) in both modes.
//! * Leading dots are removed (dot-unstuffing, §4.5.2).
//! * Content past the size limit is counted and dropped, so memory stays
//!   bounded, and the session answers `552 5.3.4` at the end.
//! * `Received:` headers are counted for the loop guard.
//! * A NUL anywhere in the content is noted ([`Content::has_nul`]); the
//!   session refuses such a message at its end (`554 5.6.0`).
//!
//! BDAT content ([`BdatReceiver`]) has neither dot-stuffing nor an end
//! marker, but without BINARYMIME (which we do not offer) it is still
//! RFC 5322 text (RFC 3030 §3): the same line-ending rule applies to it,
//! across chunk boundaries, and the same NUL rule.

pub use super::bare_lf::BareLf;

/// Where the receiver stands after consuming some input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataStatus {
    /// All input consumed; more is needed.
    NeedMore,
    /// DATA: `CRLF.CRLF` seen; bytes after it belong to the next command.
    /// BDAT: the chunk is whole.
    Complete,
    /// A bare LF or CR under `bare_lf = "reject"`: stop reading.
    BareLineEnding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// After a CRLF: a dot here may start the end marker or be stuffing.
    LineStart,
    /// After a normalised bare LF/CR: a line for the content, never for the end marker.
    SoftLineStart,
    /// Inside a line.
    InLine,
    /// After a CR inside a line.
    Cr,
    /// After a dot at a real line start.
    Dot,
    /// After `CRLF . CR`.
    DotCr,
}

/// Message content as it arrives, by DATA or BDAT: its size against the
/// limit (content past it is counted and dropped) and its `Received:`
/// header count.
#[derive(Debug)]
pub struct Content {
    limit: u64,
    /// Content bytes seen, including those dropped past the limit.
    size: u64,
    /// Still in the header section (before the first empty line).
    in_headers: bool,
    /// The start of the current header line, lower-cased, up to `received:`.
    header_prefix: Vec<u8>,
    received_headers: usize,
    /// The `Message-ID:` field's value, for the log (bounded).
    message_id: Vec<u8>,
    /// Reading the `Message-ID:` value (its line, or a folded one after it).
    in_message_id: bool,
    /// A NUL byte was seen, kept or not.
    nul: bool,
    /// BDAT: the content so far ends in a CR whose LF, if any, is the
    /// first byte of the next chunk; not yet written to the content.
    cr_pending: bool,
}

const RECEIVED: &[u8] = b"received:";
const MESSAGE_ID: &[u8] = b"message-id:";
/// Longest `Message-ID` value kept for the log.
const MESSAGE_ID_LIMIT: usize = 256;

impl Content {
    pub fn new(limit: u64) -> Self {
        Content {
            limit,
            size: 0,
            in_headers: true,
            header_prefix: Vec::with_capacity(RECEIVED.len()),
            received_headers: 0,
            message_id: Vec::new(),
            in_message_id: false,
            nul: false,
            cr_pending: false,
        }
    }

    /// Content size so far (the full size, even past the limit).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True when the content is larger than the limit.
    pub fn too_large(&self) -> bool {
        self.size > self.limit
    }

    /// `Received:` header fields seen in the header section.
    pub fn received_headers(&self) -> usize {
        self.received_headers
    }

    /// The first `Message-ID:` header field's value, trimmed (RFC 5322
    /// §3.6.4), if the header section has one; for the log line.
    pub fn message_id(&self) -> Option<String> {
        let id = String::from_utf8_lossy(&self.message_id);
        let id = id.trim();
        (!id.is_empty()).then(|| id.to_string())
    }

    /// True when the content holds a NUL byte. RFC 5322 §2.3/§3.5 text
    /// excludes it, and so do 8BITMIME bodies (RFC 6152, RFC 2045 §2.8);
    /// only BINARYMIME would carry it, and we do not offer that.
    pub fn has_nul(&self) -> bool {
        self.nul
    }

    /// Appends content to `out` up to the limit: the bytes that still fit,
    /// however the content is cut into pieces.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let keep = usize::try_from(self.room()).map_or(bytes.len(), |room| room.min(bytes.len()));
        out.extend_from_slice(&bytes[..keep]);
        self.account(bytes);
    }

    /// Like [`push`](Self::push) for a piece that must not be cut (a
    /// CRLF: half of one would be a bare CR): all of it fits, or none.
    fn push_whole(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.room() >= bytes.len() as u64 {
            out.extend_from_slice(bytes);
        }
        self.account(bytes);
    }

    /// Bytes still within the limit.
    fn room(&self) -> u64 {
        self.limit.saturating_sub(self.size)
    }

    /// Counts `bytes` as content seen, kept or not.
    fn account(&mut self, bytes: &[u8]) {
        if self.in_headers {
            self.watch_headers(bytes);
        }
        self.nul = self.nul || memchr::memchr(0, bytes).is_some();
        self.size += bytes.len() as u64;
    }

    /// Tracks the header section: counts `Received:` fields, and ends at
    /// the first empty line.
    fn watch_headers(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                self.header_prefix.clear();
                continue;
            }
            if byte == b'\r' {
                // Nothing yet on this line: it is the empty line.
                if self.header_prefix.is_empty() {
                    self.in_headers = false;
                    return;
                }
                continue;
            }
            if self.header_prefix.is_empty() {
                // A folded line continues the field; any other ends it.
                self.in_message_id = self.in_message_id && (byte == b' ' || byte == b'\t');
            }
            if self.in_message_id && self.message_id.len() < MESSAGE_ID_LIMIT {
                self.message_id.push(byte);
            }
            if self.header_prefix.len() < MESSAGE_ID.len() {
                self.header_prefix.push(byte.to_ascii_lowercase());
                if self.header_prefix == RECEIVED {
                    self.received_headers += 1;
                }
                if self.header_prefix == MESSAGE_ID && self.message_id.is_empty() {
                    self.in_message_id = true;
                }
            }
        }
    }
}

/// Incremental DATA receiver; feed it whatever the socket gave.
#[derive(Debug)]
pub struct DataReceiver {
    state: State,
    bare_lf: BareLf,
    pub content: Content,
}

impl DataReceiver {
    pub fn new(bare_lf: BareLf, limit: u64) -> Self {
        DataReceiver {
            state: State::LineStart,
            bare_lf,
            content: Content::new(limit),
        }
    }

    /// Consumes `input`, appending content to `out`. Returns how many bytes
    /// were consumed and the status; on `Complete` the rest of `input` is
    /// the next command.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, DataStatus) {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::InLine {
                // Inside a line every byte but CR and LF is content as it
                // is: the run up to the next one goes in one piece.
                let rest = &input[i..];
                let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                if run > 0 {
                    self.emit(&rest[..run], out);
                    i += run;
                    continue;
                }
            }
            let status = self.step(input[i], out);
            i += 1;
            if status != DataStatus::NeedMore {
                return (i, status);
            }
        }
        (input.len(), DataStatus::NeedMore)
    }

    fn step(&mut self, byte: u8, out: &mut Vec<u8>) -> DataStatus {
        match (self.state, byte) {
            (State::LineStart, b'.') => self.state = State::Dot,
            (State::Dot, b'\r') => self.state = State::DotCr,
            (State::DotCr, b'\n') => return DataStatus::Complete,
            (State::DotCr, _) => {
                // `CRLF . CR x`: the dot was content (a lone dot on its line
                // is kept, not unstuffed), the CR is bare.
                self.emit(b".", out);
                if self.bare(out) {
                    return DataStatus::BareLineEnding;
                }
                self.state = State::SoftLineStart;
                return self.step(byte, out);
            }
            (State::Dot, b'\n') => {
                // `CRLF . LF`: the smuggling form; keep the dot, the LF is bare.
                self.emit(b".", out);
                if self.bare(out) {
                    return DataStatus::BareLineEnding;
                }
                self.state = State::SoftLineStart;
            }
            (State::Dot, _) => {
                // Dot-stuffing: the leading dot goes, the rest stays.
                self.state = State::InLine;
                return self.step(byte, out);
            }
            (State::Cr, b'\n') => {
                self.emit(b"\r\n", out);
                self.state = State::LineStart;
            }
            (State::Cr, _) => {
                if self.bare(out) {
                    return DataStatus::BareLineEnding;
                }
                self.state = State::SoftLineStart;
                return self.step(byte, out);
            }
            (_, b'\r') => self.state = State::Cr,
            (_, b'\n') => {
                if self.bare(out) {
                    return DataStatus::BareLineEnding;
                }
                self.state = State::SoftLineStart;
            }
            (_, _) => {
                self.emit(&[byte], out);
                self.state = State::InLine;
            }
        }
        DataStatus::NeedMore
    }

    /// A bare LF or CR: true when it must stop the receiver.
    fn bare(&mut self, out: &mut Vec<u8>) -> bool {
        bare_line_ending(self.bare_lf, &mut self.content, out)
    }

    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        match bytes {
            b"\r\n" => self.content.push_whole(bytes, out),
            _ => self.content.push(bytes, out),
        }
    }
}

/// A bare LF or CR, by DATA or BDAT: true when it must stop the
/// receiver (`reject`), else it is written as CRLF (`normalize`).
fn bare_line_ending(mode: BareLf, content: &mut Content, out: &mut Vec<u8>) -> bool {
    match mode {
        BareLf::Reject => true,
        BareLf::Normalize => {
            content.push_whole(b"\r\n", out);
            false
        }
    }
}

// BDAT's receiver shares `Content` and the bare line-ending rule.
mod bdat;

pub use bdat::BdatReceiver;

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
