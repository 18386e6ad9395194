//! The broken-TLS memory of a relay: the [rule](super::memory) over its
//! file, `SPOOL_DIR/tls-memory.json` (mode 0600), across restarts.
//!
//! Changes are made under a short lock with no I/O in it; the file is
//! written by a thread of its own (temp file, rename), always with the
//! latest state, so no delivery attempt waits for the disk. Losing the
//! last change to a crash costs a failed handshake or two, never a
//! plaintext message: what is lost is a failure, or a claimed retry.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::memory::{Book, Entry};
use super::policy::{Rung, Start};
use crate::config::values::TlsLevel;

/// The file's name in the spool folder.
pub const FILE: &str = "tls-memory.json";

/// The format this version writes; `tls-memory.json` of an older relay
/// (a map of `IP:port` to a start rung) has none and is ignored.
const VERSION: u32 = 2;

/// Unix seconds now; tests pass their own.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| time::OffsetDateTime::now_utc().unix_timestamp())
}

/// A state for the writer thread, and whom to tell once it is on disk.
type Save = (Vec<u8>, Option<mpsc::Sender<io::Result<()>>>);

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    entries: Vec<Entry>,
}

pub struct TlsMemory {
    file: PathBuf,
    book: Mutex<Book>,
    /// `[delivery] broken_tls_memory` in seconds (a reload may change it).
    lifetime: std::sync::atomic::AtomicI64,
    clock: Clock,
    /// The writer thread; `None` for a reader (`probe`) that changes nothing.
    writer: Option<mpsc::Sender<Save>>,
}

impl TlsMemory {
    /// The memory of the spool in `spool_dir`, for the relay: what an
    /// earlier run remembered, with a thread to keep the file.
    pub fn open(spool_dir: &Path, lifetime: Duration, clock: Clock) -> TlsMemory {
        let file = spool_dir.join(FILE);
        let (sender, receiver) = mpsc::channel::<Save>();
        let target = file.clone();
        let spawned = std::thread::Builder::new()
            .name("tls-memory".into())
            .spawn(move || {
                while let Ok((mut bytes, mut done)) = receiver.recv() {
                    // Only the latest state matters.
                    let mut waiting = Vec::new();
                    while let Ok((newer, also)) = receiver.try_recv() {
                        waiting.extend(done.take());
                        (bytes, done) = (newer, also);
                    }
                    waiting.extend(done);
                    let written = write_file(&target, &bytes);
                    if let Err(e) = &written {
                        tracing::warn!(file = %target.display(), error = %e, "could not save the broken-TLS memory");
                    }
                    for done in waiting {
                        let _ = done.send(match &written {
                            Ok(()) => Ok(()),
                            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                        });
                    }
                }
            });
        if let Err(e) = &spawned {
            tracing::warn!(error = %e, "no thread for the broken-TLS memory: it is not saved");
        }
        let memory = TlsMemory {
            writer: spawned.ok().map(|_| sender),
            ..Self::reader(spool_dir, lifetime, clock)
        };
        memory.change(|book, now| book.expire(now));
        memory
    }

    /// The memory as saved, for `probe` and the commands: read, never
    /// written by itself.
    pub fn reader(spool_dir: &Path, lifetime: Duration, clock: Clock) -> TlsMemory {
        let file = spool_dir.join(FILE);
        TlsMemory {
            book: Mutex::new(load(&file)),
            file,
            lifetime: std::sync::atomic::AtomicI64::new(seconds(lifetime)),
            clock,
            writer: None,
        }
    }

    /// A reload's `[delivery] broken_tls_memory`, for failures from now on.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.lifetime
            .store(seconds(lifetime), std::sync::atomic::Ordering::Relaxed);
    }

    /// Where the ladder to `server` starts under `level`; a due hourly
    /// retry is claimed by the caller, who will try the rung.
    pub fn start(&self, level: TlsLevel, fallback: bool, server: &str) -> Start {
        let mut start = Start::TOP;
        self.change(|book, now| {
            start = book.start(level, fallback, server, now, true);
            start.retried.is_some()
        });
        start
    }

    /// The same question, changing nothing (`probe`).
    pub fn peek(&self, level: TlsLevel, fallback: bool, server: &str) -> Start {
        let now = (self.clock)();
        match self.book.lock() {
            Ok(book) => book.clone().start(level, fallback, server, now, false),
            Err(_) => Start::TOP,
        }
    }

    pub fn failed(&self, level: TlsLevel, server: &str, host: &str, rung: Rung) {
        let lifetime = self.lifetime.load(std::sync::atomic::Ordering::Relaxed);
        self.change(|book, now| book.failed(level, server, host, rung, now, lifetime));
    }

    pub fn succeeded(&self, server: &str, rung: Rung) {
        self.change(|book, _| book.succeeded(server, rung));
    }

    /// Every entry, oldest first failure first.
    pub fn list(&self) -> Vec<Entry> {
        let mut entries: Vec<Entry> = match self.book.lock() {
            Ok(book) => book.entries().cloned().collect(),
            Err(_) => Vec::new(),
        };
        entries.sort_by_key(|e| (e.first_failure, e.server.clone(), e.rung));
        entries
    }

    /// `tlsrelay tls-memory forget HOST | --all`; how many entries went.
    pub fn forget(&self, host: Option<&str>) -> usize {
        let mut count = 0;
        self.change(|book, _| {
            count = book.forget(host);
            count > 0
        });
        if count > 0 {
            tracing::info!(
                host = host.unwrap_or("(all)"),
                entries = count,
                "broken-TLS memory: forgotten by the administrator"
            );
        }
        count
    }

    /// Saves the state now and waits until it is on disk: after the
    /// writer thread's earlier saves, never overtaken by them. Blocks.
    pub fn save(&self) -> io::Result<()> {
        let Some(writer) = &self.writer else {
            return write_file(&self.file, &self.bytes());
        };
        let (done, written) = mpsc::channel();
        writer
            .send((self.bytes(), Some(done)))
            .map_err(|_| io::Error::other("the writer thread is gone"))?;
        written
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| io::Error::other("the writer thread did not answer"))?
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Applies `change` (true when it changed something) and hands the
    /// new state to the writer.
    fn change(&self, change: impl FnOnce(&mut Book, i64) -> bool) {
        let now = (self.clock)();
        let bytes = {
            let Ok(mut book) = self.book.lock() else {
                return;
            };
            if !change(&mut book, now) {
                return;
            }
            serialize(&book)
        };
        if let Some(writer) = &self.writer {
            let _ = writer.send((bytes, None));
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self.book.lock() {
            Ok(book) => serialize(&book),
            Err(_) => Vec::new(),
        }
    }
}

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn serialize(book: &Book) -> Vec<u8> {
    let stored = Stored {
        version: VERSION,
        entries: book.entries().cloned().collect(),
    };
    serde_json::to_vec_pretty(&stored).unwrap_or_default()
}

/// What the file holds; an unreadable or old-format file is ignored (and
/// replaced at the next change), with a line saying so.
fn load(file: &Path) -> Book {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Book::default(),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "cannot read the broken-TLS memory; starting with none");
            return Book::default();
        }
    };
    match serde_json::from_slice::<Stored>(&bytes) {
        Ok(stored) if stored.version == VERSION => Book::from_entries(stored.entries),
        Ok(stored) => {
            tracing::warn!(file = %file.display(), version = stored.version, "broken-TLS memory of another version ignored; starting with none");
            Book::default()
        }
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "broken-TLS memory in an old or unknown format ignored (an older relay's memory could downgrade to plaintext); starting with none");
            Book::default()
        }
    }
}

/// The memory replaced whole (`crate::queue::modes::replace_file`).
fn write_file(file: &Path, bytes: &[u8]) -> io::Result<()> {
    crate::queue::modes::replace_file(file, bytes)
}
