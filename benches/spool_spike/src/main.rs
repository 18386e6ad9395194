//! Issue 18 spike: how many durable message commits per second, and how
//! many syncs per message, four spool designs give at 1, 10 and 50
//! concurrent writers (each writer waits for its commit, as an SMTP
//! session waits for its 250).
//!
//! files    today's design: per message create, write, fdatasync, rename;
//!          one folder fsync shared by every rename pending (group commit)
//! segment  an append-only segment file: a committer writes every pending
//!          record with one write and one fdatasync
//! redb     one write transaction (Durability::Immediate) per batch
//! fjall    one write batch per batch, then persist(SyncData)
//!
//! usage: spool-spike DESIGN WRITERS MESSAGES SIZE DIR

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

struct Segment {
    file: File,
}

impl Store for Segment {
    fn commit(&mut self, batch: &[(u64, Vec<u8>)]) {
        let mut buffer = Vec::new();
        for (id, record) in batch {
            buffer.extend_from_slice(&id.to_le_bytes());
            buffer.extend_from_slice(&(record.len() as u32).to_le_bytes());
            buffer.extend_from_slice(record);
        }
        self.file.write_all(&buffer).unwrap();
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
    let (writers, messages, size): (usize, usize, usize) = (
        writers.parse().unwrap(),
        messages.parse().unwrap(),
        size.parse().unwrap(),
    );
    let dir = Path::new(dir);
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir.join("queue")).unwrap();
    fs::create_dir_all(dir.join("tmp")).unwrap();
    let store: Box<dyn Store> = match design.as_str() {
        "files" => Box::new(Files {
            queue: dir.join("queue"),
        }),
        "segment" => Box::new(Segment {
            file: OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("segment"))
                .unwrap(),
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
    };
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
                let record = vec![b'x'; size];
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
