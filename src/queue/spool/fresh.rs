//! Small messages just committed, kept in memory for their first
//! delivery attempt (see [`Spool::take_fresh`](super::Spool::take_fresh)).

use std::collections::HashMap;

use super::FRESH_LIMIT;

/// Committed messages not yet read, whole records by id, within
/// [`FRESH_LIMIT`] bytes in all.
#[derive(Debug, Default)]
pub(super) struct Fresh {
    messages: HashMap<String, Vec<u8>>,
    bytes: usize,
}

impl Fresh {
    pub(super) fn keep(&mut self, id: &str, data: Vec<u8>) {
        if self.bytes + data.len() <= FRESH_LIMIT {
            self.bytes += data.len();
            self.messages.insert(id.to_string(), data);
        }
    }

    pub(super) fn take(&mut self, id: &str) -> Option<Vec<u8>> {
        let data = self.messages.remove(id)?;
        self.bytes -= data.len();
        Some(data)
    }
}
