//! Issue 18 spike: how many durable message commits per second, and how
//! many syncs per message, four spool designs give at 1, 10 and 50
//! concurrent writers (each writer waits for its commit, as an SMTP
//! session waits for its 250).
//!
//! files    today's design: per message create, write, fdatasync, rename;
//!          one folder fsync shared by every rename pending (group commit)
//! segment  an append-only segment file, allocated ahead: a committer
//!          writes every pending record with one write and one fdatasync
//! redb     one write transaction (Durability::Immediate) per batch
//! fjall    one write batch per batch, then persist(SyncData)
//!
//! And the start-up of each store holding MESSAGES records (`start_up`).
//!
//! usage: spool-spike DESIGN WRITERS MESSAGES SIZE DIR
//!        spool-spike DESIGN start MESSAGES SIZE DIR

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Records waiting for the committer, and how far it has committed.
struct Queue {
    pending: Vec<(u64, Vec<u8>)>,
    committed: u64,
    next: u64,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    done: Condvar,
}

trait Store: Send {
    fn commit(&mut self, batch: &[(u64, Vec<u8>)]);
}

struct Files {
    queue: PathBuf,
}

impl Store for Files {
    /// The renames happened in the writers; one folder sync for them all.
    fn commit(&mut self, _batch: &[(u64, Vec<u8>)]) {
        File::open(&self.queue).unwrap().sync_all().unwrap();
    }
}

/// A segment file allocated ahead (`fallocate`, 1 GiB at a time), written
/// at a tracked offset: an `fdatasync` then flushes data alone, with no
/// block allocation or size change to journal. Zeros mark the end.
struct Segment {
    file: File,
    offset: u64,
    allocated: u64,
}

const SEGMENT_STEP: u64 = 1 << 30;

impl Store for Segment {
    fn commit(&mut self, batch: &[(u64, Vec<u8>)]) {
        use std::os::unix::fs::FileExt;
        use std::os::unix::io::AsRawFd;
        let mut buffer = Vec::new();
        for (id, record) in batch {
            buffer.extend_from_slice(&id.to_le_bytes());
            buffer.extend_from_slice(&(record.len() as u32).to_le_bytes());
            buffer.extend_from_slice(record);
        }
        let end = self.offset + buffer.len() as u64;
        while end > self.allocated {
            let (start, len) = (self.allocated as libc::off_t, SEGMENT_STEP as libc::off_t);
            // SAFETY: a plain system call on a file descriptor we own.
            let done = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, start, len) };
            assert_eq!(done, 0, "fallocate");
            self.allocated += SEGMENT_STEP;
            self.file.sync_all().unwrap();
        }
        self.file.write_all_at(&buffer, self.offset).unwrap();
        self.offset = end;
        self.file.sync_data().unwrap();
    }
}

const TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("messages");

struct Redb {
    db: redb::Database,
}

impl Store for Redb {
    fn commit(&mut self, batch: &[(u64, Vec<u8>)]) {
        let tx = self.db.begin_write().unwrap();
        {
            let mut table = tx.open_table(TABLE).unwrap();
            for (id, record) in batch {
                table.insert(*id, record.as_slice()).unwrap();
            }
        }
        tx.commit().unwrap();
    }
}

struct Fjall {
    db: fjall::Database,
    messages: fjall::Keyspace,
}

impl Store for Fjall {
    fn commit(&mut self, batch: &[(u64, Vec<u8>)]) {
        let mut write = self.db.batch();
        for (id, record) in batch {
            write.insert(&self.messages, id.to_be_bytes(), record.as_slice());
        }
        write.commit().unwrap();
        self.db.persist(fjall::PersistMode::SyncData).unwrap();
    }
}

fn committer(shared: Arc<Shared>, mut store: Box<dyn Store>) {
    loop {
        let batch = {
            let mut queue = shared.queue.lock().unwrap();
            while queue.pending.is_empty() {
                queue = shared.wake.wait(queue).unwrap();
            }
            std::mem::take(&mut queue.pending)
        };
        if batch.iter().any(|(id, _)| *id == u64::MAX) {
            return;
        }
        store.commit(&batch);
        let last = batch.iter().map(|(id, _)| *id).max().unwrap_or(0);
        let mut queue = shared.queue.lock().unwrap();
        queue.committed = queue.committed.max(last);
        shared.done.notify_all();
    }
}

/// Hands `record` to the committer and waits until it is durable.
fn commit(shared: &Shared, record: Vec<u8>) {
    let id = {
        let mut queue = shared.queue.lock().unwrap();
        queue.next += 1;
        let id = queue.next;
        queue.pending.push((id, record));
        shared.wake.notify_one();
        id
    };
    let mut queue = shared.queue.lock().unwrap();
    while queue.committed < id {
        queue = shared.done.wait(queue).unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, design, writers, messages, size, dir] = &args[..] else {
        panic!("usage: spool-spike DESIGN WRITERS MESSAGES SIZE DIR");
    };
    if writers == "start" {
        let (messages, size) = (messages.parse().unwrap(), size.parse().unwrap());
        return start_up(design, messages, size, Path::new(dir));
    }
    let (writers, messages, size): (usize, usize, usize) = (
        writers.parse().unwrap(),
        messages.parse().unwrap(),
        size.parse().unwrap(),
    );
    let dir = Path::new(dir);
    let store = open(design, dir);
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            pending: Vec::new(),
            committed: 0,
            next: 0,
        }),
        wake: Condvar::new(),
        done: Condvar::new(),
    });
    let worker = {
        let shared = shared.clone();
        std::thread::spawn(move || committer(shared, store))
    };
    let started = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(messages)));
    let mut threads = Vec::new();
    for w in 0..writers {
        let (shared, latencies) = (shared.clone(), latencies.clone());
        let design = design.clone();
        let dir = dir.to_path_buf();
        let count = messages / writers;
        threads.push(std::thread::spawn(move || {
            for i in 0..count {
                let record = payload(size);
                let begun = Instant::now();
                if design == "files" {
                    // Today's per-message work, in the session's own task.
                    let name = format!("{w}-{i}");
                    let tmp = dir.join("tmp").join(&name);
                    let mut file = File::create(&tmp).unwrap();
                    file.write_all(&record).unwrap();
                    file.sync_data().unwrap();
                    fs::rename(&tmp, dir.join("queue").join(&name)).unwrap();
                    commit(&shared, Vec::new());
                } else {
                    commit(&shared, record);
                }
                latencies.lock().unwrap().push(begun.elapsed());
            }
        }));
    }
    for thread in threads {
        thread.join().unwrap();
    }
    let elapsed = started.elapsed();
    shared
        .queue
        .lock()
        .unwrap()
        .pending
        .push((u64::MAX, Vec::new()));
    shared.wake.notify_one();
    worker.join().unwrap();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{design}\t{writers}\t{}\t{:.0}\t{:.2}\t{:.2}",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        ms(at(0.5)),
        ms(at(0.99))
    );
}

/// A fresh store of `design` in `dir`.
fn open(design: &str, dir: &Path) -> Box<dyn Store> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir.join("queue")).unwrap();
    fs::create_dir_all(dir.join("tmp")).unwrap();
    match design {
        "files" => Box::new(Files {
            queue: dir.join("queue"),
        }),
        "segment" => Box::new(Segment {
            file: OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(dir.join("segment"))
                .unwrap(),
            offset: 0,
            allocated: 0,
        }),
        "redb" => Box::new(Redb {
            db: redb::Database::create(dir.join("spool.redb")).unwrap(),
        }),
        "fjall" => {
            let db = fjall::Database::builder(dir.join("fjall")).open().unwrap();
            let messages = db
                .keyspace("messages", fjall::KeyspaceCreateOptions::default)
                .unwrap();
            Box::new(Fjall { db, messages })
        }
        other => panic!("unknown design {other}"),
    }
}

/// Fills a store with `messages` records of `size` bytes (1,000 per
/// commit; for `files`, a file each), drops the page cache (as after a
/// reboot), then times what a relay's start needs: opening the store and
/// listing every message's id. Prints the design, the count, the fill
/// time, the start time and the disk space used.
fn start_up(design: &str, messages: usize, size: usize, dir: &Path) {
    let filled = Instant::now();
    let mut store = open(design, dir);
    for first in (0..messages).step_by(1000) {
        let batch: Vec<(u64, Vec<u8>)> = (first..(first + 1000).min(messages))
            .map(|id| (id as u64 + 1, payload(size)))
            .collect();
        if design == "files" {
            for (id, record) in &batch {
                let tmp = dir.join("tmp").join(id.to_string());
                // Not synced one by one: only the start after it is timed.
                File::create(&tmp).unwrap().write_all(record).unwrap();
                fs::rename(&tmp, dir.join("queue").join(id.to_string())).unwrap();
            }
        }
        store.commit(&batch);
    }
    drop(store);
    let fill = filled.elapsed();
    // Cold: as after a reboot (needs root; without it the cache stays warm).
    let _ = std::process::Command::new("sync").status();
    let cold = fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    let started = Instant::now();
    let ids = list(design, dir);
    let start = started.elapsed();
    assert_eq!(ids, messages, "{design}: ids listed");
    println!(
        "{design}\t{messages}\t{:.1}\t{:.0}\t{}\t{:.0}",
        fill.as_secs_f64(),
        start.as_secs_f64() * 1000.0,
        if cold { "cold" } else { "warm" },
        disk_bytes(dir) as f64 / (messages * size) as f64 * 100.0
    );
}

/// Opens the store in `dir` and counts the ids in it.
fn list(design: &str, dir: &Path) -> usize {
    use std::io::{Read, Seek, SeekFrom};
    match design {
        "files" => {
            // Today's start reads each message's envelope line.
            let mut count = 0;
            for entry in fs::read_dir(dir.join("queue")).unwrap() {
                let mut head = [0u8; 256];
                let mut file = File::open(entry.unwrap().path()).unwrap();
                let _ = file.read(&mut head).unwrap();
                count += 1;
            }
            count
        }
        "segment" => {
            let mut file = File::open(dir.join("segment")).unwrap();
            let (mut count, mut header) = (0, [0u8; 12]);
            while file.read_exact(&mut header).is_ok() && header[..8] != [0; 8] {
                let len = u32::from_le_bytes(header[8..12].try_into().unwrap());
                file.seek(SeekFrom::Current(i64::from(len))).unwrap();
                count += 1;
            }
            count
        }
        "redb" => {
            use redb::{ReadableDatabase, ReadableTable};
            let db = redb::Database::open(dir.join("spool.redb")).unwrap();
            let tx = db.begin_read().unwrap();
            let table = tx.open_table(TABLE).unwrap();
            table.iter().unwrap().count()
        }
        "fjall" => {
            let db = fjall::Database::builder(dir.join("fjall")).open().unwrap();
            let messages = db
                .keyspace("messages", fjall::KeyspaceCreateOptions::default)
                .unwrap();
            messages.iter().count()
        }
        other => panic!("unknown design {other}"),
    }
}

/// Space the store takes on disk (allocated blocks), in bytes.
fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).unwrap();
    if meta.is_dir() {
        fs::read_dir(path)
            .unwrap()
            .map(|e| disk_bytes(&e.unwrap().path()))
            .sum::<u64>()
            + meta.blocks() * 512
    } else {
        meta.blocks() * 512
    }
}

/// `size` bytes that do not compress (fjall compresses with LZ4 by
/// default: a run of one byte would flatter it), different every call.
fn payload(size: usize) -> Vec<u8> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut x = SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
