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

pub use crate::config::values::BareLf;

/// Where the receiver stands after consuming some input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataStatus {
    /// All input consumed; more is needed.
    NeedMore,
    /// `CRLF.CRLF` seen; bytes after it belong to the next command.
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
}

const RECEIVED: &[u8] = b"received:";

impl Content {
    pub fn new(limit: u64) -> Self {
        Content {
            limit,
            size: 0,
            in_headers: true,
            header_prefix: Vec::with_capacity(RECEIVED.len()),
            received_headers: 0,
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
            if self.header_prefix.len() < RECEIVED.len() {
                self.header_prefix.push(byte.to_ascii_lowercase());
                if self.header_prefix == RECEIVED {
                    self.received_headers += 1;
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

    /// A bare LF or CR: true when it must stop the receiver, else it is
    /// written as CRLF.
    fn bare(&mut self, out: &mut Vec<u8>) -> bool {
        match self.bare_lf {
            BareLf::Reject => true,
            BareLf::Normalize => {
                self.emit(b"\r\n", out);
                false
            }
        }
    }

    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        match bytes {
            b"\r\n" => self.content.push_whole(bytes, out),
            _ => self.content.push(bytes, out),
        }
    }
}

/// Incremental BDAT chunk receiver (RFC 3030): exactly `size` bytes,
/// taken as they are.
#[derive(Debug)]
pub struct BdatReceiver {
    remaining: u64,
}

impl BdatReceiver {
    pub fn new(size: u64) -> Self {
        BdatReceiver { remaining: size }
    }

    /// Consumes up to the rest of the chunk; returns bytes consumed and
    /// whether the chunk is complete.
    pub fn feed(
        &mut self,
        input: &[u8],
        content: &mut Content,
        out: &mut Vec<u8>,
    ) -> (usize, bool) {
        let take = input
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        content.push(&input[..take], out);
        self.remaining -= take as u64;
        (take, self.remaining == 0)
    }
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
