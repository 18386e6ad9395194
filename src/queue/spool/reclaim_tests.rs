//! Reclaiming: the active segment retired once what it holds is gone,
//! the done records that must outlive it, and the spool-wide bound on
//! dead bytes.

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::super::super::segment_tests::{commit, contents, records, reopen, segments};
use super::super::super::Spool;
use super::*;

/// The bytes of every segment file in `dir`'s spool.
fn segment_bytes(dir: &Path) -> u64 {
    let folder = dir.join("segments");
    segments(dir)
        .into_iter()
        .filter_map(|n| fs::metadata(segment_path(&folder, n)).ok())
        .map(|m| m.len())
        .sum()
}

/// Waits (at most ten seconds) until `done` holds; says whether it did.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done()
}

/// `n` messages committed and delivered (their done records not flushed).
async fn delivered(spool: &Spool, n: usize) {
    delivered_of(spool, n, 500).await;
}

/// `n` messages of `size` bytes committed and delivered.
async fn delivered_of(spool: &Spool, n: usize, size: usize) {
    for i in 0..n {
        let id = commit(
            spool,
            &format!("Subject: {i}\r\n\r\n{}\r\n", "x".repeat(size)),
        )
        .await;
        spool.remove(&id);
    }
}

#[tokio::test]
async fn a_spool_whose_messages_are_all_gone_shrinks_to_nothing_when_idle_flushed_or_closed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = reopen(dir.path());
    delivered_of(&spool, 30, 40_000).await;
    assert!(segment_bytes(dir.path()) > super::IDLE_LEAST);
    // Idle: the active segment, all dead, goes.
    assert!(
        eventually(|| segments(dir.path()).is_empty()).await,
        "{:?}",
        segments(dir.path())
    );
    // Still takes mail. A little of it stays while idle (a relay that
    // gets a message now and then does not start a segment for each)...
    delivered(&spool, 5).await;
    assert!(segment_bytes(dir.path()) > 0);
    tokio::time::sleep(IDLE + Duration::from_millis(500)).await;
    assert_eq!(segments(dir.path()).len(), 1);
    // ... and a flush (as at a stop) retires it.
    spool.flush().await;
    assert_eq!(segments(dir.path()), Vec::<u32>::new());
    // So does a close.
    delivered(&spool, 5).await;
    assert!(segment_bytes(dir.path()) > 0);
    drop(spool);
    assert_eq!(segments(dir.path()), Vec::<u32>::new());
    assert_eq!(contents(&reopen(dir.path())), Vec::<String>::new());
}

#[tokio::test]
async fn messages_compacted_into_the_active_segment_then_delivered_leave_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = reopen(dir.path());
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            commit(
                &spool,
                &format!("Subject: {i}\r\n\r\n{}\r\n", "m".repeat(2000)),
            )
            .await,
        );
    }
    drop(spool);
    // The next run delivers seven: segment 1 is compacted, the eighth
    // copied to the active segment, whose bytes are then mostly copies.
    let spool = reopen(dir.path());
    for id in &ids[..7] {
        spool.remove(id);
    }
    spool.flush().await;
    spool.flush().await;
    assert_eq!(segments(dir.path()), [2]);
    spool.remove(&ids[7]);
    spool.flush().await;
    assert!(
        eventually(|| segments(dir.path()).is_empty()).await,
        "{:?}",
        segments(dir.path())
    );
    drop(spool);
    assert_eq!(contents(&reopen(dir.path())), Vec::<String>::new());
}

#[tokio::test]
async fn an_active_segment_still_mostly_live_is_kept_when_idle() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = reopen(dir.path());
    let kept = commit(
        &spool,
        &format!("Subject: K\r\n\r\n{}\r\n", "k".repeat(2000)),
    )
    .await;
    delivered(&spool, 2).await;
    spool.flush().await;
    let before = segments(dir.path());
    tokio::time::sleep(IDLE + Duration::from_millis(500)).await;
    assert_eq!(segments(dir.path()), before);
    drop(spool);
    assert_eq!(segments(dir.path()), before);
    assert!(reopen(dir.path()).contains(&kept));
}

#[tokio::test]
async fn done_records_outlive_a_retired_active_segment_and_are_not_copied_at_every_pause() {
    use crate::queue::spool::record::Kind::Done;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Run 1: X and Z in segment 1, which stays (all live).
    let spool = reopen(dir.path());
    let x = commit(&spool, "Subject: X\r\n\r\nstays\r\n").await;
    let z = commit(&spool, "Subject: Z\r\n\r\ngoes\r\n").await;
    drop(spool);
    assert_eq!(segments(dir.path()), [1]);
    // Run 2: Z delivered (its done record in segment 2), W in and out.
    // At close segment 2 holds nothing live and is retired: Z's done
    // record moves on to segment 3 (segment 1 is still there), W's goes.
    let spool = reopen(dir.path());
    // Recovery's own flush first: taken after Z's done record, it would
    // retire segment 2 before W is written, and W's run would then go
    // through a segment 3 of its own.
    spool.flush().await;
    spool.remove(&z);
    delivered(&spool, 1).await;
    spool.flush().await;
    drop(spool);
    assert_eq!(segments(dir.path()), [1, 3]);
    let moved: Vec<_> = records(dir.path(), 3)
        .into_iter()
        .map(|(kind, id, _)| (kind, id))
        .collect();
    assert_eq!(moved, [(Done, z.clone())]);
    // Run 3 reclaims segment 3 at start (Z's record moves to 4), then
    // idles and closes: segment 4 holds only what was copied into it,
    // and is left alone.
    let spool = reopen(dir.path());
    spool.flush().await;
    spool.flush().await;
    assert_eq!(segments(dir.path()), [1, 4]);
    tokio::time::sleep(IDLE + Duration::from_millis(500)).await;
    drop(spool);
    assert_eq!(segments(dir.path()), [1, 4]);
    let spool = reopen(dir.path());
    assert_eq!(contents(&spool), ["Subject: X\r\n\r\nstays\r\n"]);
    assert!(spool.contains(&x) && !spool.contains(&z));
}

fn usage(live_bytes: u64, bytes: u64) -> Usage {
    Usage {
        live: u32::from(live_bytes > 0),
        live_bytes,
        bytes,
        carried: 0,
    }
}

#[test]
fn segments_each_over_a_quarter_live_are_compacted_once_the_spool_is_overfull() {
    let mut index = Index::default();
    // Three closed segments 30%, 40% and 30% live: none worth reclaiming
    // on its own, yet the spool holds 3 times its live bytes.
    for (n, live) in [(1, 30), (2, 40), (3, 30)] {
        index.segments.insert(n, usage(live, 100));
        assert!(!index.worth_reclaiming(n));
    }
    // The active segment's dead bytes do not count, and it is never chosen.
    index.segments.insert(4, usage(10, 1000));
    index.active = Some(4);
    // Live 110, dead 200: past 55 and a slack of 100; the oldest of the
    // most dead goes first.
    assert_eq!(index.overfull(100), Some(1));
    assert_eq!(index.overfull(145), None);
    index.segments.remove(&1);
    // Live 80, dead 130 (past 40 + 50): segment 3.
    assert_eq!(index.overfull(50), Some(3));
    index.segments.remove(&3);
    // Live 50, dead 60: within 25 + 50.
    assert_eq!(index.overfull(50), None);
}

#[test]
fn a_spool_within_one_and_a_half_times_its_live_bytes_is_left_alone() {
    let mut index = Index::default();
    for n in 1..=10 {
        index.segments.insert(n, usage(70, 100));
    }
    // Live 700, dead 300: within 350.
    assert_eq!(index.overfull(0), None);
    index.segments.insert(11, usage(0, 60));
    assert_eq!(index.overfull(0), Some(11));
}
