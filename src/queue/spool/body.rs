//! A committed message for delivery: its envelope, and its content as a
//! [`Body`]: in memory when small (every message in a segment), its open
//! file when large, so that a large message is streamed to the next hop
//! and never read whole.

use std::fs::File;
use std::io::{self, BufRead};
use std::os::unix::fs::FileExt;

use super::{parse_head, Spool, SpoolError};
use crate::queue::body::Body;
use crate::queue::envelope::Envelope;

/// Content up to this size is read into memory; larger stays in its file.
const BODY_IN_MEMORY: u64 = 256 * 1024;

impl Spool {
    /// Message `id`'s envelope and content, the content in memory up to
    /// [`BODY_IN_MEMORY`] bytes and read from its open file beyond.
    /// File work: call it on the blocking pool.
    pub fn body(&self, id: &str) -> Result<(Envelope, Body), SpoolError> {
        // A message in a segment is small (within the spool's memory limit).
        if self.in_segment(id) {
            let (envelope, content) = self.read(id)?;
            return Ok((envelope, Body::in_memory(content)));
        }
        let path = self.inner.view.queue.join(id);
        let file_error = |source| SpoolError::File {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(file_error)?;
        let size = file.metadata().map_err(file_error)?.len();
        // The magic line and the envelope line: all parse_head looks at.
        let mut head = Vec::new();
        let mut reader = io::BufReader::new(&file);
        for _ in 0..2 {
            reader.read_until(b'\n', &mut head).map_err(file_error)?;
        }
        let (envelope, start) = parse_head(&path, &head)?;
        let (start, len) = (start as u64, size.saturating_sub(start as u64));
        if len > BODY_IN_MEMORY {
            return Ok((envelope, Body::in_file(file, start, len)));
        }
        let mut content = vec![0; len as usize];
        file.read_exact_at(&mut content, start)
            .map_err(file_error)?;
        Ok((envelope, Body::in_memory(content)))
    }
}
