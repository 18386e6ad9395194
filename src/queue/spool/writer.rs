//! A message being received, from the first content byte to its commit
//! (see "Durability" in [`spool`](super)).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;

use super::record::{self, Kind};
use super::{Spool, SpoolError, MEMORY_LIMIT};
use crate::queue::blocking;

/// A message being received. Dropping it without [`commit`](Self::commit)
/// removes every trace of it.
#[derive(Debug)]
pub struct MessageWriter {
    pub(super) id: String,
    pub(super) tmp: PathBuf,
    /// Bytes kept free at the start of `buffer` for the record's head;
    /// none once the content went to a file.
    pub(super) prefix: usize,
    pub(super) buffer: Vec<u8>,
    pub(super) file: Option<File>,
    /// A write to the `.tmp` file failed: content is missing, so the
    /// message must never be committed (the client gets 451/452 instead).
    pub(super) broken: Option<io::Error>,
    /// Counted among the messages being received (see the committer's
    /// `GATHER`) until it is handed over or dropped.
    pub(super) open: bool,
    pub(super) spool: Spool,
}

impl MessageWriter {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Appends content; spills to the `.tmp` file past the memory limit.
    /// After a failed write the rest is discarded and the commit fails.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        if self.broken.is_some() {
            return Ok(());
        }
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() < MEMORY_LIMIT {
            return Ok(());
        }
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.drain(..std::mem::take(&mut self.prefix));
        let file = self.file.take();
        let tmp = self.tmp.clone();
        let spool = self.spool.clone();
        let (file, result) = blocking(move || {
            let mut file = match file {
                Some(file) => file,
                None => match spool.inner.spares.take(&tmp) {
                    Ok(file) => file,
                    Err(e) => return (None, Err(e)),
                },
            };
            let result = file.write_all(&buffer);
            (Some(file), result)
        })
        .await
        .unwrap_or_else(|e| (None, Err(e)));
        self.file = file;
        result.map_err(|e| {
            let source = io::Error::new(e.kind(), e.to_string());
            self.broken = Some(e);
            SpoolError::File {
                path: self.tmp.clone(),
                source,
            }
        })
    }

    /// Makes the message durable under its id. Only after this returns Ok
    /// may the client be told `250`.
    pub async fn commit(mut self) -> Result<String, SpoolError> {
        self.close();
        if let Some(source) = self.broken.take() {
            // Dropping `self` removes the `.tmp` file.
            return Err(SpoolError::File {
                path: self.tmp.clone(),
                source,
            });
        }
        match self.file.is_some() {
            true => self.commit_file().await,
            false => self.commit_record().await,
        }
    }

    /// A message that stayed in memory: one record in the next batch of
    /// the committer, then kept for its first attempt.
    async fn commit_record(mut self) -> Result<String, SpoolError> {
        let mut bytes = std::mem::take(&mut self.buffer);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        bytes[..self.prefix].copy_from_slice(&record::head(Kind::Message, &self.id, now, 0));
        record::seal(&mut bytes);
        let id = std::mem::take(&mut self.id);
        let (result, bytes) = self.spool.append(&id, bytes).await;
        result.map_err(|source| SpoolError::Folder {
            path: self.spool.inner.view.segments.clone(),
            source,
        })?;
        if let Ok(mut fresh) = self.spool.inner.fresh.lock() {
            fresh.keep(&id, bytes);
        }
        Ok(id)
    }

    /// A message that went to its own file as it arrived: synced, renamed
    /// to its id, the folder synced (shared with every rename waiting).
    async fn commit_file(mut self) -> Result<String, SpoolError> {
        let buffer = std::mem::take(&mut self.buffer);
        let file = self.file.take();
        let tmp = self.tmp.clone();
        let done = self.spool.inner.view.queue.join(&self.id);
        let result = blocking(move || {
            let mut file = file.ok_or_else(|| io::Error::other("no spool file"))?;
            file.write_all(&buffer)?;
            crate::metrics::spool_synced();
            file.sync_data()?;
            fs::rename(&tmp, &done)
        })
        .await
        .and_then(|r| r);
        if let Err(source) = result {
            let _ = fs::remove_file(&self.tmp);
            return Err(SpoolError::File {
                path: self.tmp.clone(),
                source,
            });
        }
        // Renamed: from here on the Drop below must not remove anything.
        let id = std::mem::take(&mut self.id);
        self.tmp = PathBuf::new();
        self.spool
            .sync_queue_folder()
            .await
            .map_err(|source| SpoolError::Folder {
                path: self.spool.inner.view.queue.clone(),
                source,
            })?;
        Ok(id)
    }
}

impl MessageWriter {
    /// No longer a message being received.
    fn close(&mut self) {
        if std::mem::take(&mut self.open) {
            self.spool
                .inner
                .writers
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

impl Drop for MessageWriter {
    fn drop(&mut self) {
        self.close();
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
