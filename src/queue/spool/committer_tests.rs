//! The committer's write path: batches written whole from the records'
//! own buffers, and the syncs and batches it counts.

use std::fs;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::super::tests::envelope;
use super::super::Spool;
use super::vectored::{write_all_vectored_at, MAX_SLICES};
use super::{segment_path, Committer, Index, Job};

/// Records of sizes 0 to 40, as many as two and a bit `pwritev` calls take.
fn records() -> Vec<Vec<u8>> {
    (0..2 * MAX_SLICES + 7)
        .map(|i| format!("{i:08};").repeat(i % 5).into_bytes())
        .collect()
}

#[test]
fn parts_beyond_one_call_are_written_in_order_from_the_offset() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("file");
    fs::write(&path, b"head").unwrap_or_else(|e| panic!("{e}"));
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{e}"));
    let records = records();
    let parts: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    write_all_vectored_at(&file, &parts, 4).unwrap_or_else(|e| panic!("{e}"));
    let mut expected = b"head".to_vec();
    expected.extend(records.concat());
    assert_eq!(fs::read(&path).ok(), Some(expected));
    write_all_vectored_at(&file, &[], 0).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_batch_of_many_records_lands_whole_and_its_message_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let index = Arc::new(Mutex::new(Index::default()));
    let writers = Arc::new(AtomicUsize::new(0));
    let mut committer = Committer::new(dir.path().to_path_buf(), index, 1, writers, Arc::default());
    let records = records();
    let mut batch: Vec<Job> = records.iter().cloned().map(Job::Done).collect();
    let (reply, mut acked) = oneshot::channel();
    batch.push(Job::Message {
        id: "MESSAGE".into(),
        record: b"the message".to_vec(),
        reply,
    });
    committer.commit(batch);
    let ack = acked.try_recv().unwrap_or_else(|e| panic!("{e}"));
    assert!(ack.0.is_ok(), "{:?}", ack.0);
    assert_eq!(ack.1, b"the message");
    let mut expected = records.concat();
    expected.extend_from_slice(b"the message");
    let written = fs::read(segment_path(dir.path(), 1)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(written.get(..expected.len()), Some(expected.as_slice()));
    // Allocated ahead, not yet trimmed: the rest is zeros.
    assert!(written[expected.len()..].iter().all(|&b| b == 0));
}

/// The value of the unlabelled counter `name` in the process's metrics.
fn counter(name: &str) -> u64 {
    crate::metrics::render()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

#[tokio::test]
async fn every_sync_and_batch_is_counted() {
    let syncs = counter("tlsrelay_spool_syncs_total");
    let batches = counter("tlsrelay_spool_batches_total");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    // One client at a time: no other message is open, so each is a batch
    // of its own, synced, and the first one starts a segment (a folder
    // sync). Other tests count too: only the least rise is certain.
    for i in 0..3 {
        let mut writer = spool.create(&envelope());
        writer
            .write(format!("message {i}\r\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        writer.commit().await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(counter("tlsrelay_spool_syncs_total") >= syncs + 4);
    assert!(counter("tlsrelay_spool_batches_total") >= batches + 3);
}

fn message(n: usize) -> (Job, oneshot::Receiver<super::Ack>) {
    let (reply, acked) = oneshot::channel();
    let job = Job::Message {
        id: format!("M{n}"),
        record: vec![b'm'; 100],
        reply,
    };
    (job, acked)
}

#[test]
fn a_lone_client_is_written_at_once_a_busy_batch_closes_in_time() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let index = Arc::new(Mutex::new(Index::default()));
    let writers = Arc::new(AtomicUsize::new(0));
    let committer = Committer::new(
        dir.path().to_path_buf(),
        index,
        1,
        writers.clone(),
        Arc::default(),
    );
    let (jobs, received) = std::sync::mpsc::channel();
    // No other message is being received: the batch is what waits, now.
    let (first, _acked) = message(0);
    assert_eq!(committer.gather(first, &received).len(), 1);
    // Others keep coming, every half millisecond for about 200 ms: the
    // batch still closes (GATHER_MOST), long before the last one.
    writers.store(1, std::sync::atomic::Ordering::Release);
    let sender = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for n in 1..=400 {
            let (job, acked) = message(n);
            if jobs.send(job).is_err() {
                break;
            }
            kept.push(acked);
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
        kept.len()
    });
    let first = received.recv().unwrap_or_else(|e| panic!("{e}"));
    let batch = committer.gather(first, &received);
    assert!(
        batch.len() < 400,
        "one batch took all {} messages",
        batch.len()
    );
    drop(received);
    let _ = sender.join();
}
