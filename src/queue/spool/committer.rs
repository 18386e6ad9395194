//! The one thread that writes segments (see "Segments" in
//! [`spool`](super)): it takes every record waiting, writes them with one
//! `pwritev` at the end of the active segment, straight from the records'
//! own buffers (no batch-sized copy is made or kept), syncs once for all
//! of them (group commit), and only then tells each writer its message is
//! safe. Between batches it reclaims segments no longer worth their space.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::index::{segment_path, Index, Loc};
use crate::queue::modes::open_private;

#[path = "later.rs"]
mod later;
#[path = "reclaim.rs"]
mod reclaim;
#[path = "vectored.rs"]
mod vectored;

pub(super) use later::Later;
use vectored::{put, put_parts};

/// A segment is closed once it holds this much; a new one is started.
pub(super) const SEGMENT_SIZE: u64 = 64 << 20;
/// Space is allocated ahead in steps of this much (`fallocate`), so that
/// writes land in allocated blocks: the file's size does not change with
/// each batch (no journalled allocation per sync), and a full disk is
/// found before anything is written.
const ALLOCATE_STEP: u64 = 4 << 20;
/// A batch takes records up to about this many bytes.
const BATCH_BYTES: usize = 8 << 20;
/// How long a batch waits for the next record while messages are still
/// being received: with a fast disk a sync ends before the next session
/// reaches the end of its DATA, and without the wait each batch would hold
/// one or two messages (0.7 syncs per message at 50 sessions). Each
/// message that comes gives the batch this long again, up to
/// [`GATHER_MOST`]. A lone client has no other message open, so it never
/// waits.
const GATHER: Duration = Duration::from_millis(1);
/// A batch is never held open longer than this from its first record:
/// what group commit may add to a `250`.
const GATHER_MOST: Duration = Duration::from_millis(2);

/// What a writer gets back: whether its message is on stable storage,
/// and its record's bytes (kept for the first delivery attempt).
pub(super) type Ack = (io::Result<()>, Vec<u8>);

/// Work for the committer.
pub(super) enum Job {
    /// A message record: durable before the reply.
    Message {
        id: String,
        record: Vec<u8>,
        reply: oneshot::Sender<Ack>,
    },
    /// A done record: written with the next batch, not waited for (lost
    /// in a crash, its message is delivered again: a duplicate, never a
    /// loss).
    Done(Vec<u8>),
    /// A state record, number `save` of message `id`: like a done record,
    /// written with the next batch and not waited for (lost in a crash,
    /// recipients delivered already are tried again).
    State {
        id: String,
        save: u64,
        record: Vec<u8>,
    },
    /// Sync whatever was written, then reply (at shutdown); the active
    /// segment is retired first when it is worth it (see `reclaim`).
    Flush(oneshot::Sender<()>),
    /// Records wait in [`Later`]: take them.
    Wake,
}

impl Job {
    /// The record's bytes, as written to the segment.
    fn bytes(&self) -> &[u8] {
        match self {
            Job::Message { record, .. } | Job::Done(record) | Job::State { record, .. } => record,
            Job::Flush(_) | Job::Wake => &[],
        }
    }

    fn len(&self) -> usize {
        self.bytes().len()
    }
}

/// The segment being written.
struct Active {
    number: u32,
    file: File,
    /// Where the next record goes.
    offset: u64,
    /// Bytes allocated ahead so far.
    allocated: u64,
    /// Written since the last sync.
    dirty: bool,
    /// A write or sync failed: nothing more goes into it.
    broken: bool,
}

pub(super) struct Committer {
    folder: PathBuf,
    index: Arc<Mutex<Index>>,
    active: Option<Active>,
    next: u32,
    /// The filesystem cannot allocate ahead (`EOPNOTSUPP`): writes grow the file.
    no_fallocate: bool,
    /// Messages being received and not yet handed over (see [`GATHER`]).
    writers: Arc<AtomicUsize>,
    /// Done records, taken with every batch.
    later: Arc<Later>,
}

/// Locks the index, whatever a panicking holder left (a map, consistent
/// after every single operation).
pub(super) fn lock(index: &Mutex<Index>) -> MutexGuard<'_, Index> {
    index
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Committer {
    /// A committer writing new segments in `folder`, numbered from `next`.
    pub(super) fn new(
        folder: PathBuf,
        index: Arc<Mutex<Index>>,
        next: u32,
        writers: Arc<AtomicUsize>,
        later: Arc<Later>,
    ) -> Committer {
        Committer {
            folder,
            index,
            active: None,
            next,
            no_fallocate: false,
            writers,
            later,
        }
    }

    /// Runs until every sender is gone, then syncs what it wrote and
    /// trims the space allocated ahead (retiring the active segment when
    /// it is worth it: see `reclaim`).
    pub(super) fn run(mut self, jobs: &mpsc::Receiver<Job>) {
        while let Some(first) = self.next_job(jobs) {
            let batch = self.gather(first, jobs);
            self.commit(batch);
        }
        self.retire(0);
        let index = self.index.clone();
        self.close(&mut lock(&index));
    }

    /// The batch that `first` opens: every record waiting, then, while
    /// messages are being received, those that come within [`GATHER`] of
    /// the last message, for at most [`GATHER_MOST`] in all.
    fn gather(&self, first: Job, jobs: &mpsc::Receiver<Job>) -> Vec<Job> {
        let opened = Instant::now();
        let mut deadline = opened + GATHER;
        let mut bytes = first.len();
        let mut batch = vec![first];
        while bytes < BATCH_BYTES {
            let next = match jobs.try_recv() {
                Ok(job) => Some(job),
                Err(_) if self.writers.load(Ordering::Acquire) == 0 => None,
                Err(_) => deadline
                    .checked_duration_since(Instant::now())
                    .and_then(|left| jobs.recv_timeout(left).ok()),
            };
            let Some(job) = next else {
                break;
            };
            if matches!(job, Job::Message { .. }) {
                deadline = (Instant::now() + GATHER).min(opened + GATHER_MOST);
            }
            bytes += job.len();
            batch.push(job);
        }
        // After the messages: a record waiting there was saved after its
        // message was acknowledged, so never before it.
        batch.extend(self.later.take());
        batch
    }

    /// Writes one batch: one write, one sync when it holds a message;
    /// then reclaims what is worth it, before any flush is answered.
    fn commit(&mut self, batch: Vec<Job>) {
        let (mut records, mut flushes) = (Vec::new(), Vec::new());
        for job in batch {
            match job {
                Job::Flush(reply) => flushes.push(reply),
                Job::Wake => {}
                job => records.push(job),
            }
        }
        if !records.is_empty() {
            let durable = records.iter().any(|j| matches!(j, Job::Message { .. }));
            let parts: Vec<&[u8]> = records.iter().map(Job::bytes).collect();
            let written = self.append(&parts, durable);
            match written {
                Ok((segment, start)) => self.acknowledge(records, segment, start),
                Err(e) => fail(records, &e, &mut lock(&self.index)),
            }
        }
        self.reclaim();
        if !flushes.is_empty() {
            // A flush comes at a stop, when the process may exit before
            // this thread ends: retire now what the stop would.
            self.retire(0);
            self.sync();
        }
        for reply in flushes {
            let _ = reply.send(());
        }
    }

    /// Appends `parts`, one after another, to the active segment (a new
    /// one when they do not fit), synced when `durable`; returns the
    /// segment and the offset.
    fn append(&mut self, parts: &[&[u8]], durable: bool) -> io::Result<(u32, u64)> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let index = self.index.clone();
        self.make_room(len as u64, &mut lock(&index))?;
        let active = self.active.as_mut().ok_or_else(gone)?;
        let start = put_parts(active, parts, len, durable)?;
        Ok((active.number, start))
    }

    /// The records of a batch are on disk: into the index, then the writers told.
    fn acknowledge(&self, records: Vec<Job>, segment: u32, start: u64) {
        let mut index = lock(&self.index);
        let mut offset = start;
        let mut acks = Vec::new();
        for job in records {
            let len = job.len();
            let loc = Loc {
                segment,
                offset: offset as u32,
                len: len as u32,
            };
            match job {
                Job::Message { id, record, reply } => {
                    index.insert(&id, loc);
                    acks.push((reply, record));
                }
                Job::State { id, save, .. } => index.state_written(&id, save, loc),
                Job::Done(_) | Job::Flush(_) | Job::Wake => {}
            }
            offset += len as u64;
        }
        if let Some(usage) = index.segments.get_mut(&segment) {
            usage.bytes += offset - start;
        }
        index.batches += 1;
        drop(index);
        crate::metrics::spool_batch_written();
        for (reply, record) in acks {
            let _ = reply.send((Ok(()), record));
        }
    }

    /// Makes the active segment ready for `len` more bytes: a new segment
    /// when there is none, it failed, or it is full; space allocated ahead.
    fn make_room(&mut self, len: u64, index: &mut Index) -> io::Result<()> {
        let fits = self
            .active
            .as_ref()
            .is_some_and(|a| !a.broken && (a.offset == 0 || a.offset + len <= SEGMENT_SIZE));
        if !fits {
            self.rotate(index)?;
        }
        let no_fallocate = self.no_fallocate;
        let active = self.active.as_mut().ok_or_else(gone)?;
        let need = active.offset + len;
        if need <= active.allocated || no_fallocate {
            return Ok(());
        }
        let step = (need - active.allocated).max(ALLOCATE_STEP);
        match allocate(&active.file, active.allocated, step) {
            Ok(()) => active.allocated += step,
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => self.no_fallocate = true,
            // Not a whole step left: perhaps what this batch needs.
            Err(_) => {
                allocate(&active.file, active.allocated, need - active.allocated)?;
                active.allocated = need;
            }
        }
        Ok(())
    }

    /// Closes the active segment and starts the next one.
    fn rotate(&mut self, index: &mut Index) -> io::Result<()> {
        self.close(index);
        let n = self.next;
        self.next += 1;
        let path = segment_path(&self.folder, n);
        let file = open_private(
            &path,
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true),
        )?;
        // The new name must survive a crash before any message in it is acknowledged.
        crate::metrics::spool_synced();
        File::open(&self.folder)?.sync_all()?;
        index.active = Some(n);
        index.segments.entry(n).or_default();
        self.active = Some(Active {
            number: n,
            file,
            offset: 0,
            allocated: 0,
            dirty: false,
            broken: false,
        });
        Ok(())
    }

    /// No segment is active any more: the last one is synced, trimmed of
    /// the space allocated ahead, and may be reclaimed from now on.
    fn close(&mut self, index: &mut Index) {
        let Some(active) = self.active.take() else {
            return;
        };
        if !active.broken {
            let _ = active.file.set_len(active.offset);
            let _ = sync_data(&active.file);
        }
        index.active = None;
        index.check(active.number);
    }

    fn sync(&mut self) {
        if let Some(active) = self.active.as_mut().filter(|a| a.dirty) {
            if sync_data(&active.file).is_ok() {
                active.dirty = false;
            }
        }
    }
}

/// `fdatasync` of a segment, counted (`tlsrelay_spool_syncs_total`).
fn sync_data(file: &File) -> io::Result<()> {
    crate::metrics::spool_synced();
    file.sync_data()
}

/// Allocates `len` bytes of `file` from `offset` (the size grows with it).
fn allocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    // SAFETY: fallocate on a descriptor we own; no memory is passed.
    match unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Every writer in `records` told that its message was not committed;
/// states not written are dropped from the index (the message's earlier
/// state counts again: recipients may be tried twice).
fn fail(records: Vec<Job>, e: &io::Error, index: &mut Index) {
    for job in records {
        match job {
            Job::Message { record, reply, .. } => {
                let copy = match e.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(e.kind(), e.to_string()),
                };
                let _ = reply.send((Err(copy), record));
            }
            Job::State { id, save, .. } => {
                tracing::warn!(queue_id = %id, error = %e, "could not write a delivery state; delivered recipients may be tried again");
                index.state_lost(&id, save);
            }
            Job::Done(_) | Job::Flush(_) | Job::Wake => {}
        }
    }
}

fn gone() -> io::Error {
    io::Error::other("no spool segment is open")
}

#[cfg(test)]
#[path = "committer_tests.rs"]
mod tests;
