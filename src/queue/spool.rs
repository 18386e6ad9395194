//! The durable spool: messages appended to segment files, committed in
//! groups; large messages in files of their own.
//!
//! # On-disk format
//!
//! ```text
//! SPOOL_DIR/
//!   lock          held (flock, exclusive) by the one process using the spool
//!   tls-memory.json  the broken-TLS memory (`outbound::memory`)
//!   control.sock  the running relay's control socket (`queue::control`)
//!   segments/
//!     <N>.seg     messages, delivery states and done records, appended
//!                 (`spool::record`)
//!   queue/
//!     <ID>        a message too large for a segment (and every message of
//!                 a spool written before segments existed: read in place)
//!     <ID>.tmp    a large message being received; removed at start
//!   state/        only in a spool written before segments: a delivery
//!                 state per file, read in place until superseded; the
//!                 folder is removed at open once empty
//!   quarantine/   what is found damaged: files from queue/, stretches of
//!                 segments
//!   spare/        emptied files of finished large messages, reused
//! ```
//!
//! A message is the line `tlsrelay-spool 1`, the envelope as one line of
//! JSON ([`Envelope`]), then the content exactly as it will be sent (our
//! `Received:` header first, CRLF line endings, not dot-stuffed): the whole
//! of a file in `queue/`, the payload of a record in a segment.
//!
//! # Segments and group commit (DESIGN.md §4)
//!
//! `250` is sent only after [`MessageWriter::commit`] returns. A message
//! that stayed within [`MEMORY_LIMIT`] while it arrived (nearly all mail)
//! becomes one record handed to the committer thread
//! (`spool::committer`), which takes every record waiting, appends them
//! with one write to the active segment and syncs once (`fdatasync`) for
//! all of them: fifty sessions ending their DATA together cost one sync,
//! not fifty. Space is allocated ahead (`fallocate`), so the write neither
//! grows the file nor meets a full disk: that is found before anything is
//! written, and the batch answers `452`. A crash before the sync loses
//! only records never acknowledged; the checksum of every record finds the
//! torn one at the end, and a segment is never written again after a
//! restart (each run starts a new one), so what followed a torn record
//! cannot come back.
//!
//! A message that leaves the queue gets a done record (not synced: lost in
//! a crash, the message is delivered again, a duplicate and never a loss).
//! It goes with the committer's next batch, and wakes the committer only
//! when it waits for work (`spool/later.rs`).
//! At start every segment is read, oldest first, into the index (where
//! each live message is; `spool::index`); SMTP answers meanwhile, as the
//! scan runs in the queue manager's recovery. A segment with no live
//! record left is removed; one whose live records fill less than a
//! quarter of it has them copied to the active segment (synced) first, so
//! a few long-deferred messages do not pin the disk space of everything
//! delivered around them. Done records about messages in older segments
//! still on disk are copied along, so no delivered message comes back.
//! The same is done while the relay runs (between batches), to the
//! segment being written too once it is mostly dead and the relay idles
//! or stops, and to the most dead segment whenever dead bytes pass half
//! of the live ones plus a segment (`spool/reclaim.rs`): a queue that
//! empties leaves next to nothing on disk, a deferred one at most about
//! 1.5 times its bytes.
//!
//! # Delivery states
//!
//! A message's per-recipient delivery state (`queue::state`), saved after
//! each attempt that leaves it queued, is a state record: handed to the
//! committer (which it wakes), written with the next batch, neither
//! synced nor waited for (lost in a crash, recipients delivered already
//! are tried again: a duplicate, never a loss; [`Spool::flush`] puts it on
//! stable storage, as an administrator's command with no relay running
//! does before it exits). A load right after a save finds it in memory
//! until it is written. The latest state record of a message counts, and
//! is live; the ones before it are dead bytes. Scanned in order: a
//! message, then its states (the last one wins), then its done record
//! (which drops both); a state of a message not queued is ignored (for
//! a large message in `queue/`, recovery checks that its file is there).
//! Compacting a message's segment copies its latest state right after
//! it, from whatever segment holds it, so a scan never meets the state
//! first. A state record's head also holds its summary (the next
//! attempt, held or not; see `record`), so recovery schedules a message
//! without reading the JSON; states written before summaries existed are
//! parsed as before. A message of an earlier release with no state record yet has
//! its state read from `state/<ID>`; the first save supersedes and
//! removes that file, as the message's removal does.
//!
//! A message past [`MEMORY_LIMIT`] is written to `queue/<ID>.tmp` as it
//! arrives, `fdatasync`ed, renamed to `queue/<ID>` and the folder synced
//! (the folder sync shared by every rename waiting): it never passes
//! through memory whole, and delivery can stream it.
//!
//! Small messages are then kept in memory (up to [`FRESH_LIMIT`] bytes in
//! all) until their first delivery attempt takes them
//! ([`Spool::take_fresh`]), so that attempt does not read back what was
//! just written; the segment stays the only copy that counts.
//!
//! # Spare files
//!
//! A finished large message's file is not unlinked but renamed into `spare/` and
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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::oneshot;

use super::envelope::Envelope;
use super::modes::{self, create_private, open_private, Fixes};

mod body;
mod committer;
mod fresh;
mod index;
mod read;
mod record;
mod recover;
mod spares;
mod states;
mod window;
mod writer;

use committer::{lock as lock_index, Committer, Job, Later};
use fresh::Fresh;
use index::{Index, Loc};
use read::parse_head;
pub use read::{list_ids, read_envelope, read_message, SpoolView};
pub use record::Summary;
use spares::Spares;
pub use writer::MessageWriter;

const MAGIC: &str = "tlsrelay-spool 1\n";
/// The lock file in the spool folder; see [`Spool::open`].
pub const LOCK_FILE: &str = "lock";
/// Content beyond this is written to a file of its own as it arrives.
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
    /// Where messages are found: the segments' index and `queue/`.
    view: SpoolView,
    spares: Spares,
    fresh: Mutex<Fresh>,
    next: AtomicU64,
    id_base: u64,
    /// The first segment this run writes; older ones are read at recovery.
    first_new: u32,
    committer: mpsc::Sender<Job>,
    /// Done records for the committer, sent without waking it.
    later: Arc<Later>,
    /// Messages being received (a [`MessageWriter`] not yet committed or
    /// dropped): the committer waits a moment for them (group commit).
    writers: Arc<AtomicUsize>,
    /// The committer thread, joined when the spool closes: its last
    /// records are written before the lock is let go.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    syncer: mpsc::Sender<oneshot::Sender<io::Result<()>>>,
    /// Holds the exclusive lock on `SPOOL_DIR/lock` for as long as the spool is open.
    _lock: File,
}

/// What recovery found: every queued message and when it arrived.
#[derive(Debug, Default)]
pub struct Recovered {
    /// (id, Unix time of arrival, its latest state's summary), oldest
    /// first. The summary is `None` when only the state's JSON says (a
    /// large message's, or one an earlier release wrote): load it.
    pub messages: Vec<(crate::queue::qid::Qid, i64, Option<Summary>)>,
    pub segments: usize,
}

impl Spool {
    /// Opens (creating) the spool under `dir`, removes what unacknowledged
    /// large messages left behind, and starts the committer and
    /// folder-sync threads. Messages in segments are found by
    /// [`recover`](Self::recover), which the caller runs next (the queue
    /// manager runs it while SMTP already answers).
    ///
    /// Only one process may have a spool open: it takes an exclusive lock on
    /// `dir/lock` first, so a second relay on the same folder (or an
    /// administrator's command while the relay runs) gets
    /// [`SpoolError::Locked`] instead of removing the first one's `.tmp`
    /// files or delivering its messages twice. The kernel drops the lock
    /// when the process dies, SIGKILL included.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        let queue = dir.join("queue");
        let segments = dir.join("segments");
        let folder_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SpoolError::Folder { path, source }
        };
        // Modes first (DESIGN.md §6), so that the log line counts what an
        // older version or a hand left readable by others; queue/ and
        // spare/ are checked on their own passes below (they read those
        // folders anyway), segments/ with the rest of the tree.
        let mut fixes = Fixes::default();
        if dir.exists() {
            modes::fix_tree(dir, &["queue", "spare"], &mut fixes).map_err(folder_error(dir))?;
        }
        modes::create_folder(dir)
            .and_then(|()| modes::create_folder(&queue))
            .map_err(folder_error(&queue))?;
        modes::create_folder(&segments).map_err(folder_error(&segments))?;
        let lock = lock(dir)?;
        let mut removed = false;
        for entry in fs::read_dir(&queue).map_err(folder_error(&queue))? {
            let entry = entry.map_err(folder_error(&queue))?;
            let path = entry.path();
            if let Ok(metadata) = entry.metadata() {
                fixes.check(&path, &metadata);
            }
            if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path).map_err(|source| SpoolError::File {
                    path: path.clone(),
                    source,
                })?;
                removed = true;
            } else if entry.metadata().is_ok_and(|m| m.is_file() && m.len() == 0) {
                // A spare whose rename the crash lost; see "Spare files".
                removed |= fs::remove_file(&path).is_ok();
            }
        }
        let numbers = index::segment_numbers(&segments).map_err(folder_error(&segments))?;
        let spares = Spares::open(dir.join("spare"), &mut fixes)
            .map_err(folder_error(&dir.join("spare")))?;
        fixes.log(dir);
        if removed {
            sync_folder(&queue).map_err(folder_error(&queue))?;
        }
        // Probe writability now, so a read-only spool stops the start.
        let probe = segments.join(".write-test.tmp");
        create_private(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(folder_error(&segments))?;
        let (syncer, requests) = mpsc::channel();
        let folder = queue.clone();
        std::thread::Builder::new()
            .name("spool-sync".into())
            .spawn(move || folder_syncer(&folder, &requests))
            .map_err(folder_error(&queue))?;
        states::drop_old_states(dir);
        let index = Arc::new(Mutex::new(Index::default()));
        let first_new = numbers.last().map_or(1, |n| n + 1);
        let (committer, jobs) = mpsc::channel();
        let writers = Arc::new(AtomicUsize::new(0));
        let later = Arc::new(Later::default());
        let writer = Committer::new(
            segments.clone(),
            index.clone(),
            first_new,
            writers.clone(),
            later.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("spool-commit".into())
            .spawn(move || writer.run(&jobs))
            .map_err(folder_error(&segments))?;
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Ok(Spool {
            inner: Arc::new(Inner {
                view: SpoolView::new(dir, index),
                spares,
                fresh: Mutex::new(Fresh::default()),
                next: AtomicU64::new(0),
                id_base: micros,
                first_new,
                committer,
                later,
                writers,
                thread: Mutex::new(Some(thread)),
                syncer,
                _lock: lock,
            }),
        })
    }

    /// A new queue id: unique within this spool, sortable by time of start.
    ///
    /// The start time in microseconds, then a 24-bit counter. Every time
    /// the counter wraps (16.7 million messages) the time part moves on by
    /// one microsecond, so an id is never handed out twice: a second
    /// message under one id would replace the first.
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
        // Room for the record's head, written at commit (see `record`).
        let prefix = record::HEAD + id.len();
        let mut buffer = vec![0; prefix];
        buffer.extend_from_slice(MAGIC.as_bytes());
        // An Envelope always serialises; the fallback keeps the format valid.
        buffer.extend_from_slice(
            serde_json::to_string(envelope)
                .unwrap_or_else(|_| "{}".into())
                .as_bytes(),
        );
        buffer.push(b'\n');
        self.inner.writers.fetch_add(1, Ordering::AcqRel);
        MessageWriter {
            tmp: self.inner.view.queue.join(format!("{id}.tmp")),
            id,
            prefix,
            buffer,
            file: None,
            broken: None,
            open: true,
            spool: self.clone(),
        }
    }

    /// The queued messages' ids, oldest first (after [`recover`](Self::recover)).
    pub fn list(&self) -> Result<Vec<String>, SpoolError> {
        self.inner.view.ids()
    }

    /// True when message `id` is in the queue.
    pub fn contains(&self, id: &str) -> bool {
        self.inner.view.contains(id)
    }

    /// Reads a queued message: its envelope and content.
    pub fn read(&self, id: &str) -> Result<(Envelope, Vec<u8>), SpoolError> {
        self.inner.view.read(id)
    }

    /// True when message `id` is kept in a segment (not a file of its own).
    fn in_segment(&self, id: &str) -> bool {
        lock_index(&self.inner.view.index).contains(id)
    }

    /// The envelope of a queued message.
    pub fn read_envelope(&self, id: &str) -> Result<Envelope, SpoolError> {
        self.inner
            .view
            .read_envelope(id)
            .map(|(envelope, _)| envelope)
    }

    /// A message committed by this process and not read since, from
    /// memory: the first delivery attempt need not read back what it
    /// just wrote. Taken, so it is handed out once; `None` sends the
    /// caller to [`read`](Self::read). A message given out here has never
    /// been attempted, so it has no delivery state yet.
    pub fn take_fresh(&self, id: &str) -> Option<(Envelope, Vec<u8>)> {
        let mut data = self.inner.fresh.lock().ok()?.take(id)?;
        let image = record::HEAD + id.len();
        let (envelope, start) = parse_head(Path::new(id), data.get(image..)?).ok()?;
        data.drain(..image + start);
        Some((envelope, data))
    }

    /// Removes a message that left the queue, and its delivery state: a
    /// done record for one in a segment, its file made a spare for a large
    /// one. Not synced: should the removal be lost in a crash, the message
    /// is delivered again.
    pub fn remove(&self, id: &str) {
        let loc = self.forget(id);
        let view = &self.inner.view;
        if let Some(old) = &view.old_states {
            let _ = fs::remove_file(old.join(id));
        }
        match loc {
            Some(loc) => self.mark_done(id, loc),
            None => {
                let path = view.queue.join(id);
                if !self.inner.spares.put(&path) {
                    let _ = fs::remove_file(path);
                }
            }
        }
    }

    /// [`remove`](Self::remove) when that is memory work only (a message
    /// in a segment, and no state files of an older spool), done here
    /// under one lock of the index; false when it is not, and then
    /// nothing was removed: the caller removes `id` on the blocking pool.
    /// Spares async callers a thread hand-off for each delivered message.
    pub fn remove_in_memory(&self, id: &str) -> bool {
        if self.inner.view.old_states.is_some() {
            return false;
        }
        match self.forget(id) {
            Some(loc) => {
                self.mark_done(id, loc);
                true
            }
            None => false,
        }
    }

    /// Drops `id` from memory (the fresh content kept for its delivery,
    /// its index entry); where it was in a segment, if it was in one.
    fn forget(&self, id: &str) -> Option<Loc> {
        if let Ok(mut fresh) = self.inner.fresh.lock() {
            fresh.take(id);
        }
        lock_index(&self.inner.view.index).remove(id)
    }

    /// The done record of a message removed from segment `loc.segment`:
    /// it goes with the committer's next batch.
    fn mark_done(&self, id: &str, loc: Loc) {
        let done = Job::Done(record::done(id, loc.segment));
        self.inner.later.push(done, &self.inner.committer);
    }

    /// Waits until every record handed to the committer is written and
    /// synced (done records included): at shutdown, so that a clean stop
    /// delivers nothing twice.
    pub async fn flush(&self) {
        let (reply, done) = oneshot::channel();
        if self.inner.committer.send(Job::Flush(reply)).is_ok() {
            let _ = done.await;
        }
    }

    /// Hands a sealed message record to the committer; waits for the batch.
    async fn append(&self, id: &str, record: Vec<u8>) -> committer::Ack {
        let (reply, done) = oneshot::channel();
        let job = Job::Message {
            id: id.to_string(),
            record,
            reply,
        };
        if let Err(mpsc::SendError(job)) = self.inner.committer.send(job) {
            let record = match job {
                Job::Message { record, .. } => record,
                _ => Vec::new(),
            };
            return (Err(io::Error::other("spool committer stopped")), record);
        }
        done.await
            .unwrap_or_else(|_| (Err(io::Error::other("spool committer stopped")), Vec::new()))
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

impl Drop for Inner {
    fn drop(&mut self) {
        // The last sender gone, the committer writes what it has and stops.
        drop(std::mem::replace(&mut self.committer, mpsc::channel().0));
        let thread = self.thread.get_mut().ok().and_then(Option::take);
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// One step of reading a segment, as the fuzz target sees it.
#[doc(hidden)]
#[derive(Debug, PartialEq, Eq)]
pub enum SegmentStep {
    /// A checked record: where it starts, its length, its kind (1 message,
    /// 2 done, 3 state) and its queue id.
    Record {
        offset: u64,
        len: usize,
        kind: u8,
        id: String,
    },
    /// Bytes that are no record, followed by one.
    Damaged { offset: u64, len: usize },
    /// Bytes at the end that were never a whole record.
    Torn { bytes: u64 },
}

/// How recovery reads a segment's bytes, step by step: for the fuzz
/// target (`fuzz/fuzz_targets/segment.rs`), which holds it to never
/// panicking and to steps that lie in order within the bytes.
#[doc(hidden)]
pub fn segment_steps(bytes: &[u8]) -> Vec<SegmentStep> {
    let mut steps = Vec::new();
    index::walk(bytes, |step| {
        steps.push(match step {
            index::Step::Record(offset, record) => SegmentStep::Record {
                offset,
                len: record.len,
                kind: record.kind as u8,
                id: record.id.to_string(),
            },
            index::Step::Damaged(offset, damaged) => SegmentStep::Damaged {
                offset,
                len: damaged.len(),
            },
            index::Step::Torn(bytes) => SegmentStep::Torn { bytes },
        })
    });
    steps
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
    crate::metrics::spool_synced();
    File::open(folder)?.sync_all()
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "spool/segment_tests.rs"]
mod segment_tests;
