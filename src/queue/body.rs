//! The content of a queued message as delivery reads it: in memory when
//! it is small, or a range of its open spool file when it is large, read a
//! piece at a time on the blocking pool. A delivery of a 10 MB message
//! then holds one piece of it, not the whole (issue 18): the relay's
//! memory does not grow with the size of the messages it relays.
//!
//! Reads are positional (`pread`), so one open file serves several
//! readers (the groups of one attempt, a notice) without a shared cursor.
//! The file is not changed while a delivery reads it: the queue manager
//! holds back an administrator's `delete` or `bounce` of a message until
//! its attempt is over. Should it end early all the same, a read fails
//! rather than come back short.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::blocking;

/// A queued message's content (as spooled: CRLF lines, not dot-stuffed).
#[derive(Debug)]
pub struct Body {
    source: Source,
}

#[derive(Debug)]
enum Source {
    Memory(Vec<u8>),
    /// `len` bytes of `file` from `start`.
    File {
        file: Arc<File>,
        start: u64,
        len: u64,
    },
}

impl Body {
    /// Content held in memory.
    pub fn in_memory(content: Vec<u8>) -> Body {
        Body {
            source: Source::Memory(content),
        }
    }

    /// The `len` bytes of `file` from `start`, read when asked for.
    pub fn in_file(file: File, start: u64, len: u64) -> Body {
        Body {
            source: Source::File {
                file: Arc::new(file),
                start,
                len,
            },
        }
    }

    /// The content's size in bytes.
    pub fn len(&self) -> u64 {
        match &self.source {
            Source::Memory(content) => content.len() as u64,
            Source::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the content is read from its file a piece at a time.
    pub fn is_in_file(&self) -> bool {
        matches!(self.source, Source::File { .. })
    }

    /// At most `max` bytes from `offset` (fewer only at the end; none
    /// past it). From a file, read on the blocking pool.
    pub async fn read_at(&self, offset: u64, max: usize) -> io::Result<Cow<'_, [u8]>> {
        let left = self.len().saturating_sub(offset);
        let count = usize::try_from(left).unwrap_or(usize::MAX).min(max);
        match &self.source {
            Source::Memory(content) => {
                let from = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(content.len());
                Ok(Cow::Borrowed(&content[from..from + count]))
            }
            Source::File { file, start, .. } => {
                let (file, at) = (file.clone(), start + offset);
                let read = blocking(move || {
                    let mut piece = vec![0; count];
                    file.read_exact_at(&mut piece, at).map(|()| piece)
                })
                .await
                .and_then(|read| read)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => io::Error::new(
                        e.kind(),
                        format!(
                            "the spool file ends before byte {} of the message",
                            offset + count as u64
                        ),
                    ),
                    _ => e,
                })?;
                Ok(Cow::Owned(read))
            }
        }
    }

    /// The first `max` bytes (all of a shorter content).
    pub async fn prefix(&self, max: usize) -> io::Result<Cow<'_, [u8]>> {
        self.read_at(0, max).await
    }

    /// The header section, through the empty line that ends it, when it
    /// ends within `max` bytes; else the first `max` bytes (all of a
    /// shorter content): what a look at the headers needs.
    pub async fn head(&self, max: usize) -> io::Result<Cow<'_, [u8]>> {
        let prefix = self.prefix(max).await?;
        let Some(end) = memchr::memmem::find(&prefix, b"\r\n\r\n").map(|at| at + 4) else {
            return Ok(prefix);
        };
        Ok(match prefix {
            Cow::Borrowed(bytes) => Cow::Borrowed(&bytes[..end]),
            Cow::Owned(mut bytes) => {
                bytes.truncate(end);
                bytes.shrink_to_fit();
                Cow::Owned(bytes)
            }
        })
    }

    /// The content in pieces of at most `size` bytes, in order.
    pub fn pieces(&self, size: usize) -> Pieces<'_> {
        Pieces {
            body: self,
            offset: 0,
            size: size.max(1),
        }
    }
}

/// The content a piece at a time ([`Body::pieces`]).
pub struct Pieces<'a> {
    body: &'a Body,
    offset: u64,
    size: usize,
}

impl<'a> Pieces<'a> {
    /// The next piece; `None` after the last.
    pub async fn next(&mut self) -> Option<io::Result<Cow<'a, [u8]>>> {
        if self.offset >= self.body.len() {
            return None;
        }
        let piece = self.body.read_at(self.offset, self.size).await;
        self.offset = match &piece {
            Ok(piece) => self.offset + piece.len() as u64,
            // Nothing after a failed read.
            Err(_) => self.body.len(),
        };
        Some(piece)
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
