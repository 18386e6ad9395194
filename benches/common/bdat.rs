//! BDAT (RFC 3030 CHUNKING) as the sink takes it: the command's
//! arguments, and the chunk that follows the command line read and
//! dropped without looking at its bytes, so that BDAT costs the sink less
//! than DATA (which scans every line for the final dot).

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The size and LAST flag of `BDAT <size> [LAST]` (RFC 3030 §2); `None`
/// for anything else.
pub fn parse_bdat(line: &[u8]) -> Option<(u64, bool)> {
    let mut words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    words.next()?;
    let size = words.next().filter(|w| w.iter().all(u8::is_ascii_digit))?;
    let size = std::str::from_utf8(size).ok()?.parse().ok()?;
    let last = match words.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case(b"LAST") => true,
        Some(_) => return None,
    };
    words.next().is_none().then_some((size, last))
}

/// Reads and drops the `size` bytes of a chunk, which follow its command
/// line in any pieces (with that line, or with the next commands); only
/// the count is looked at. `false` when the stream ends first.
pub async fn skip_chunk<R: AsyncBufRead + Unpin>(io: &mut R, mut size: u64) -> io::Result<bool> {
    while size > 0 {
        let available = io.fill_buf().await?.len();
        if available == 0 {
            return Ok(false);
        }
        let taken = available.min(usize::try_from(size).unwrap_or(usize::MAX));
        io.consume(taken);
        size -= taken as u64;
    }
    Ok(true)
}
