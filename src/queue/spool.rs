//! The durable spool: one file per accepted message.
//!
//! # On-disk format
//!
//! ```text
//! SPOOL_DIR/
//!   lock          held (flock, exclusive) by the one process using the spool
//!   tls-memory.json  the broken-TLS memory (`outbound::memory`)
//!   control.sock  the running relay's control socket (`queue::control`)
//!   state/        per-recipient delivery state (`queue::state`)
//!   quarantine/   files found in queue/ that are not readable messages
//!   spare/        emptied files of finished messages, reused for new ones
//!   queue/
//!     <ID>        a committed message
//!     <ID>.tmp    a message being received; never acknowledged, removed at start
//! ```
//!
//! A message file is the line `tlsrelay-spool 1`, the envelope as one line
//! of JSON ([`Envelope`]), then the content exactly as it will be sent
//! (our `Received:` header first, CRLF line endings, not dot-stuffed).
//!
//! Every folder here is 0700 and every file 0600, whatever the umask
//! (DESIGN.md §6, `queue::modes`); [`Spool::open`] narrows what it finds
//! wider and says so in one log line.
//!
//! # Durability (DESIGN.md §4)
//!
//! `250` is sent only after [`MessageWriter::commit`] returns: the content
//! is written to `<ID>.tmp` and `fdatasync`ed, renamed to `<ID>`, and the
//! `queue/` folder is fsynced so the rename itself survives a crash. The
//! folder fsync is shared (group commit): one thread syncs the folder for
//! every rename that arrived while the previous sync ran, so no session
//! waits longer than one batch. A crash before the rename leaves only a
//! `.tmp` file, removed at start; a crash after the folder sync but before
//! the `250` reached the client leaves a message the client will send again
//! (a duplicate, never a loss; RFC 1047).
//!
//! Small messages stay in memory until commit, so the common case costs
//! one blocking task: create, write, sync, rename. Such a message is then
//! kept in memory (up to `FRESH_LIMIT` bytes in all) until its first
//! delivery attempt takes it ([`Spool::take_fresh`]), so that attempt does
//! not read back the file just written; the file stays the only copy that
//! counts, and later attempts and restarts read it.
//!
//! # Spare files
//!
//! A finished message's file is not unlinked but renamed into `spare/` and
//! emptied, and the next message takes it instead of creating a file. This
//! keeps inodes in use rather than freeing one and allocating one per
//! message: on ext4 without a journal, allocation skips every inode freed
//! in the last few seconds (five, or 300 while the inode table block is
//! dirty), so at a thousand messages a second each new file meant a linear
//! scan of thousands of freed inodes under the folder's lock. That scan
//! was half of the relay's CPU time under load (BENCHMARKS.md). At most
//! [`SPARE_LIMIT`] files wait in `spare/` (empty inodes, enough for a
//! backlog of that many messages to drain and fill again without a new
//! one); past that they are unlinked.
//!
//! A crash can leave a spare with content (the rename survived, the
//! truncation did not), so every spare is emptied again at start and when
//! taken; or an empty file under its message id in `queue/` (the
//! truncation survived, the rename did not). A committed message is never
//! empty (it starts with the format line and was synced before its
//! rename), so [`Spool::open`] removes empty files from `queue/`: the
//! message they held was delivered.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use tokio::sync::oneshot;

use super::envelope::Envelope;
use super::modes::{self, create_private, open_private, Fixes};

mod body;
mod read;
mod spares;
mod writer;

use read::parse_head;
pub use read::{list_ids, read_envelope, read_message};
use spares::Spares;
pub use writer::MessageWriter;

const MAGIC: &str = "tlsrelay-spool 1\n";
/// The lock file in the spool folder; see [`Spool::open`].
pub const LOCK_FILE: &str = "lock";
/// Content beyond this is written to the `.tmp` file as it arrives.
const MEMORY_LIMIT: usize = 256 * 1024;
/// Messages held whole in memory for their first delivery attempt, in bytes.
const FRESH_LIMIT: usize = 32 * 1024 * 1024;
/// At most this many emptied files wait in `spare/` to be reused.
pub const SPARE_LIMIT: usize = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool folder {}: {source}", path.display())]
    Folder { path: PathBuf, source: io::Error },
    #[error("spool file {}: {source}", path.display())]
    File { path: PathBuf, source: io::Error },
    #[error("spool file {}: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    /// Another process (a running relay) holds the spool.
    #[error("spool folder {} is in use by another tlsrelay process (it holds {})", path.display(), path.join(LOCK_FILE).display())]
    Locked { path: PathBuf },
}

impl SpoolError {
    /// The disk is full: the client should try again later (`452 4.3.1`).
    pub fn is_no_space(&self) -> bool {
        let source = match self {
            SpoolError::Folder { source, .. } | SpoolError::File { source, .. } => source,
            SpoolError::Corrupt { .. } | SpoolError::Locked { .. } => return false,
        };
        source.raw_os_error() == Some(28) // ENOSPC
    }
}

/// The spool of one node. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Spool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    queue: PathBuf,
    spares: Spares,
    fresh: std::sync::Mutex<Fresh>,
    next: AtomicU64,
    id_base: u64,
    syncer: mpsc::Sender<oneshot::Sender<io::Result<()>>>,
    /// Holds the exclusive lock on `SPOOL_DIR/lock` for as long as the spool is open.
    _lock: File,
}

impl Spool {
    /// Opens (creating) the spool under `dir`, removes what unacknowledged
    /// messages left behind, and starts the folder-sync thread.
    ///
    /// Only one process may have a spool open: it takes an exclusive lock on
    /// `dir/lock` first, so a second relay on the same folder (or an
    /// administrator's command while the relay runs) gets
    /// [`SpoolError::Locked`] instead of removing the first one's `.tmp`
    /// files or delivering its messages twice. The kernel drops the lock
    /// when the process dies, SIGKILL included.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        let queue = dir.join("queue");
        let folder_error = |source| SpoolError::Folder {
            path: queue.clone(),
            source,
        };
        // Modes first (DESIGN.md §6), so that the log line counts what an
        // older version or a hand left readable by others; queue/ and
        // spare/ are checked on their own passes below.
        let mut fixes = Fixes::default();
        if dir.exists() {
            modes::fix_tree(dir, &["queue", "spare"], &mut fixes).map_err(|source| {
                SpoolError::Folder {
                    path: dir.to_path_buf(),
                    source,
                }
            })?;
        }
        modes::create_folder(dir)
            .and_then(|()| modes::create_folder(&queue))
            .map_err(folder_error)?;
        let lock = lock(dir)?;
        for entry in fs::read_dir(&queue).map_err(folder_error)? {
            let entry = entry.map_err(folder_error)?;
            let path = entry.path();
            if let Ok(metadata) = entry.metadata() {
                fixes.check(&path, &metadata);
            }
            if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path).map_err(|source| SpoolError::File {
                    path: path.clone(),
                    source,
                })?;
            } else if entry.metadata().is_ok_and(|m| m.is_file() && m.len() == 0) {
                // A spare whose rename the crash lost; see "Spare files".
                let _ = fs::remove_file(&path);
            }
        }
        let spares =
            Spares::open(dir.join("spare"), &mut fixes).map_err(|source| SpoolError::Folder {
                path: dir.join("spare"),
                source,
            })?;
        fixes.log(dir);
        sync_folder(&queue).map_err(folder_error)?;
        // Probe writability now, so a read-only spool stops the start.
        let probe = queue.join(".write-test.tmp");
        create_private(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(folder_error)?;
        let (syncer, requests) = mpsc::channel();
        let folder = queue.clone();
        std::thread::Builder::new()
            .name("spool-sync".into())
            .spawn(move || folder_syncer(&folder, &requests))
            .map_err(folder_error)?;
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Ok(Spool {
            inner: Arc::new(Inner {
                queue,
                spares,
                fresh: std::sync::Mutex::new(Fresh::default()),
                next: AtomicU64::new(0),
                id_base: micros,
                syncer,
                _lock: lock,
            }),
        })
    }

    /// A new queue id: unique within this spool, sortable by time of start.
    ///
    /// The start time in microseconds, then a 24-bit counter. Every time
    /// the counter wraps (16.7 million messages) the time part moves on by
    /// one microsecond, so an id is never handed out twice: the rename in
    /// [`MessageWriter::commit`] would silently replace a queued message.
    /// A later start is later by far more microseconds than there were wraps.
    fn next_id(&self) -> String {
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:012X}{:06X}",
            self.inner.id_base.wrapping_add(n >> 24) & 0xFFFF_FFFF_FFFF,
            n & 0xFF_FFFF
        )
    }

    /// Starts a message for `envelope`.
    pub fn create(&self, envelope: &Envelope) -> MessageWriter {
        let id = self.next_id();
        let mut buffer = MAGIC.as_bytes().to_vec();
        // An Envelope always serialises; the fallback keeps the format valid.
        buffer.extend_from_slice(
            serde_json::to_string(envelope)
                .unwrap_or_else(|_| "{}".into())
                .as_bytes(),
        );
        buffer.push(b'\n');
        MessageWriter {
            tmp: self.inner.queue.join(format!("{id}.tmp")),
            id,
            buffer,
            file: None,
            broken: None,
            spool: self.clone(),
        }
    }

    /// The committed messages' ids, oldest first.
    pub fn list(&self) -> Result<Vec<String>, SpoolError> {
        list_ids(&self.inner.queue)
    }

    /// True when message `id` is in the queue.
    pub fn contains(&self, id: &str) -> bool {
        valid_id(id) && self.inner.queue.join(id).is_file()
    }

    /// When message `id` arrived, as far as its file says (its last
    /// change: the commit), in Unix seconds.
    pub fn arrived(&self, id: &str) -> Option<i64> {
        let modified = fs::metadata(self.inner.queue.join(id))
            .ok()?
            .modified()
            .ok()?;
        let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
        i64::try_from(since.as_secs()).ok()
    }

    /// Reads a committed message: its envelope and content.
    pub fn read(&self, id: &str) -> Result<(Envelope, Vec<u8>), SpoolError> {
        read_message(&self.inner.queue.join(id))
    }

    /// The envelope of a committed message, without its content.
    pub fn read_envelope(&self, id: &str) -> Result<Envelope, SpoolError> {
        read_envelope(&self.inner.queue.join(id)).map(|(envelope, _)| envelope)
    }

    /// A message committed by this process and not read since, from
    /// memory: the first delivery attempt need not read back the file it
    /// just wrote. Taken, so it is handed out once; `None` sends the
    /// caller to [`read`](Self::read). A message given out here has never
    /// been attempted, so it has no delivery state yet.
    pub fn take_fresh(&self, id: &str) -> Option<(Envelope, Vec<u8>)> {
        let mut data = self.inner.fresh.lock().ok()?.take(id)?;
        let (envelope, start) = parse_head(&self.inner.queue.join(id), &data).ok()?;
        data.drain(..start);
        Some((envelope, data))
    }

    /// Moves an unreadable file out of `queue/` into `quarantine/`, so it
    /// is neither retried for ever nor lost: an administrator can look at
    /// it. Returns where it went.
    pub fn quarantine(&self, id: &str) -> io::Result<PathBuf> {
        let folder = self.inner.queue.with_file_name("quarantine");
        modes::create_folder(&folder)?;
        let to = folder.join(id);
        fs::rename(self.inner.queue.join(id), &to)?;
        Ok(to)
    }

    /// Removes a message that left the queue: its file becomes a spare.
    /// Not synced: should the removal be lost in a crash, the message is
    /// delivered again.
    pub fn remove(&self, id: &str) {
        if let Ok(mut fresh) = self.inner.fresh.lock() {
            fresh.take(id);
        }
        let path = self.inner.queue.join(id);
        if !self.inner.spares.put(&path) {
            let _ = fs::remove_file(path);
        }
    }

    /// Asks the folder-sync thread to sync `queue/`, waiting for the batch.
    async fn sync_queue_folder(&self) -> io::Result<()> {
        let (reply, done) = oneshot::channel();
        self.inner
            .syncer
            .send(reply)
            .map_err(|_| io::Error::other("spool sync thread stopped"))?;
        done.await
            .map_err(|_| io::Error::other("spool sync thread stopped"))?
    }
}

/// True for a string that can be a queue id (what [`Spool::next_id`] makes:
/// ASCII letters and digits), so that an id typed by an administrator can
/// never name a path outside the queue.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Takes the spool's lock, or says who has it.
fn lock(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let file = open_private(
        &path,
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true),
    )
    .map_err(|source| SpoolError::File {
        path: path.clone(),
        source,
    })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(SpoolError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(source)) => Err(SpoolError::File { path, source }),
    }
}

/// Syncs the folder once for every batch of waiting requests.
fn folder_syncer(folder: &Path, requests: &mpsc::Receiver<oneshot::Sender<io::Result<()>>>) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        batch.extend(requests.try_iter());
        let result = sync_folder(folder);
        for reply in batch {
            let outcome = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            let _ = reply.send(outcome);
        }
    }
}

fn sync_folder(folder: &Path) -> io::Result<()> {
    File::open(folder)?.sync_all()
}

/// Committed messages not yet read, whole file images by id, within
/// [`FRESH_LIMIT`] bytes in all.
#[derive(Debug, Default)]
struct Fresh {
    messages: std::collections::HashMap<String, Vec<u8>>,
    bytes: usize,
}

impl Fresh {
    fn keep(&mut self, id: &str, data: Vec<u8>) {
        if self.bytes + data.len() <= FRESH_LIMIT {
            self.bytes += data.len();
            self.messages.insert(id.to_string(), data);
        }
    }

    fn take(&mut self, id: &str) -> Option<Vec<u8>> {
        let data = self.messages.remove(id)?;
        self.bytes -= data.len();
        Some(data)
    }
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
