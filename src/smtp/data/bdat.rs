//! The BDAT chunk receiver (RFC 3030): the content rules of DATA without
//! its dot-stuffing and end marker, across chunk boundaries.

use super::{bare_line_ending, BareLf, Content, DataStatus};

/// Incremental BDAT chunk receiver (RFC 3030): exactly `size` bytes,
/// taken as they are but for line endings: a bare LF or CR stops it
/// under `reject` and becomes CRLF under `normalize`, as in DATA. A CRLF
/// may straddle two chunks: a CR that ends a chunk waits in the
/// [`Content`] for the next one ([`finish_message`](Self::finish_message)
/// settles it after the last).
#[derive(Debug)]
pub struct BdatReceiver {
    remaining: u64,
    bare_lf: BareLf,
}

impl BdatReceiver {
    pub fn new(size: u64, bare_lf: BareLf) -> Self {
        BdatReceiver {
            remaining: size,
            bare_lf,
        }
    }

    /// A chunk read only to be dropped (RFC 3030 §2: a refused BDAT is
    /// still followed by its bytes): never stops on a line ending.
    pub fn discard(size: u64) -> Self {
        BdatReceiver::new(size, BareLf::Normalize)
    }

    /// Consumes up to the rest of the chunk. Returns the bytes consumed
    /// and `Complete` when the chunk is whole, `NeedMore` before, or
    /// `BareLineEnding` (under `reject`, at the byte that showed it).
    pub fn feed(
        &mut self,
        input: &[u8],
        content: &mut Content,
        out: &mut Vec<u8>,
    ) -> (usize, DataStatus) {
        let take = input
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let chunk = &input[..take];
        let mut i = 0;
        while i < take {
            if content.cr_pending {
                content.cr_pending = false;
                if chunk[i] == b'\n' {
                    content.push_whole(b"\r\n", out);
                    i += 1;
                    continue;
                }
                if bare_line_ending(self.bare_lf, content, out) {
                    return self.stop(i + 1);
                }
                // The byte after the bare CR is read as any other.
                continue;
            }
            let rest = &chunk[i..];
            let Some(end) = memchr::memchr2(b'\r', b'\n', rest) else {
                content.push(rest, out);
                break;
            };
            content.push(&rest[..end], out);
            i += end + 1;
            if rest[end] == b'\r' {
                content.cr_pending = true;
            } else if bare_line_ending(self.bare_lf, content, out) {
                return self.stop(i);
            }
        }
        self.remaining -= take as u64;
        let status = match self.remaining {
            0 => DataStatus::Complete,
            _ => DataStatus::NeedMore,
        };
        (take, status)
    }

    /// Stops at a bare line ending, `used` bytes into this input.
    fn stop(&mut self, used: usize) -> (usize, DataStatus) {
        self.remaining -= used as u64;
        (used, DataStatus::BareLineEnding)
    }

    /// The last chunk is whole: a CR still waiting for its LF is bare.
    /// `Complete`, or `BareLineEnding` under `reject`.
    pub fn finish_message(&self, content: &mut Content, out: &mut Vec<u8>) -> DataStatus {
        if std::mem::take(&mut content.cr_pending) && bare_line_ending(self.bare_lf, content, out) {
            return DataStatus::BareLineEnding;
        }
        DataStatus::Complete
    }
}
