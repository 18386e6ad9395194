//! Segments across restarts: what a crash leaves at the end of one, damage
//! in the middle, reclaiming space, and done records that must outlive
//! the segment they were written in.

use std::fs;
use std::path::{Path, PathBuf};

use super::index::{segment_numbers, segment_path};
use super::tests::envelope;
use super::*;

pub(super) async fn commit(spool: &Spool, body: &str) -> String {
    let mut writer = spool.create(&envelope());
    writer
        .write(body.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    writer.commit().await.unwrap_or_else(|e| panic!("{e}"))
}

/// Opens the spool in `dir` and reads what it holds.
pub(super) fn reopen(dir: &Path) -> Spool {
    let spool = Spool::open(dir).unwrap_or_else(|e| panic!("{e}"));
    spool.recover().unwrap_or_else(|e| panic!("{e}"));
    spool
}

pub(super) fn contents(spool: &Spool) -> Vec<String> {
    let mut bodies: Vec<String> = spool
        .list()
        .unwrap_or_default()
        .iter()
        .filter_map(|id| spool.read(id).ok())
        .map(|(_, c)| String::from_utf8_lossy(&c).into_owned())
        .collect();
    bodies.sort();
    bodies
}

pub(super) fn segments(dir: &Path) -> Vec<u32> {
    segment_numbers(&dir.join("segments")).unwrap_or_default()
}

fn last_segment(dir: &Path) -> PathBuf {
    let n = segments(dir).last().copied().unwrap_or(0);
    segment_path(&dir.join("segments"), n)
}

/// Two messages in one segment, written by a run that ended; the
/// segment's bytes and where the second record starts.
async fn two_messages(dir: &Path) -> (Vec<u8>, usize) {
    let spool = Spool::open(dir).unwrap_or_else(|e| panic!("{e}"));
    let first = commit(&spool, "Subject: A\r\n\r\nfirst\r\n").await;
    commit(&spool, "Subject: B\r\n\r\nsecond\r\n").await;
    let second_at = {
        let index = committer::lock(&spool.inner.view.index);
        let loc = index
            .message(&first)
            .unwrap_or_else(|| panic!("not indexed"))
            .message;
        (loc.offset + loc.len) as usize
    };
    drop(spool);
    let mut bytes = fs::read(last_segment(dir)).unwrap_or_default();
    // What a crash leaves: the space allocated ahead is not trimmed.
    bytes.resize(bytes.len() + 4096, 0);
    (bytes, second_at)
}

#[tokio::test]
async fn a_torn_or_damaged_last_record_is_dropped_at_every_byte_and_the_rest_kept() {
    let template = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (bytes, second_at) = two_messages(template.path()).await;
    let end = bytes.iter().rposition(|&b| b != 0).unwrap_or(0) + 1;
    let first = vec!["Subject: A\r\n\r\nfirst\r\n".to_string()];
    for cut in second_at..=end {
        for damage in [false, true] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            fs::create_dir_all(dir.path().join("segments")).unwrap_or_else(|e| panic!("{e}"));
            let mut torn = bytes[..cut].to_vec();
            if damage && cut < end {
                // The rest is there but one byte of the record is wrong.
                torn = bytes.clone();
                torn[cut] ^= 0x5A;
            }
            let path = segment_path(&dir.path().join("segments"), 1);
            fs::write(&path, &torn).unwrap_or_else(|e| panic!("{e}"));
            let spool = reopen(dir.path());
            let mut expected = first.clone();
            if cut == end {
                expected.push("Subject: B\r\n\r\nsecond\r\n".into());
            }
            assert_eq!(contents(&spool), expected, "cut {cut}, damage {damage}");
            // Still takes mail, and the next start sees both runs' mail
            // (at some cuts: each commit waits for a disk sync).
            if cut % 16 != 0 && cut != end {
                continue;
            }
            commit(&spool, "Subject: C\r\n\r\nlater\r\n").await;
            drop(spool);
            let spool = reopen(dir.path());
            expected.push("Subject: C\r\n\r\nlater\r\n".into());
            expected.sort();
            assert_eq!(contents(&spool), expected, "cut {cut}, damage {damage}");
        }
    }
}

#[tokio::test]
async fn damage_in_the_middle_goes_to_quarantine_and_what_follows_is_kept() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut bytes, second_at) = two_messages(dir.path()).await;
    // A third record after the damaged second one: copy the first.
    let first = bytes[..second_at].to_vec();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap_or(0) + 1;
    bytes.truncate(end);
    bytes[second_at + 30] ^= 1;
    bytes.extend_from_slice(&first);
    fs::write(last_segment(dir.path()), &bytes).unwrap_or_else(|e| panic!("{e}"));
    let spool = reopen(dir.path());
    assert_eq!(contents(&spool), ["Subject: A\r\n\r\nfirst\r\n"]);
    let kept = fs::read(
        dir.path()
            .join("quarantine")
            .join(format!("segment-1-at-{second_at}")),
    )
    .unwrap_or_default();
    assert_eq!(kept.len(), end - second_at, "the damaged record kept whole");
}

#[tokio::test]
async fn segments_whose_messages_are_done_are_removed_and_sparse_ones_compacted() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = reopen(dir.path());
    let kept = commit(&spool, "Subject: deferred\r\n\r\nstays\r\n").await;
    for n in 0..20 {
        let id = commit(
            &spool,
            &format!("Subject: {n}\r\n\r\n{}\r\n", "x".repeat(500)),
        )
        .await;
        spool.remove(&id);
    }
    spool.flush().await;
    drop(spool);
    // At close segment 1 is mostly dead: the live message is copied to
    // segment 2 and 1 goes.
    assert_eq!(segments(dir.path()), [2]);
    let spool = reopen(dir.path());
    spool.flush().await;
    commit(&spool, "Subject: new\r\n\r\nhi\r\n").await;
    assert_eq!(segments(dir.path()), [2, 3]);
    assert!(spool.contains(&kept));
    spool.remove(&kept);
    spool.flush().await;
    drop(spool);
    let spool = reopen(dir.path());
    assert_eq!(contents(&spool), ["Subject: new\r\n\r\nhi\r\n"]);
}

#[tokio::test]
async fn done_records_outlive_their_segment_while_the_message_s_segment_remains() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Run 1: X and Z, as large as each other, in segment 1.
    let spool = reopen(dir.path());
    let x = commit(&spool, "Subject: X\r\n\r\nstays\r\n").await;
    let z = commit(&spool, "Subject: Z\r\n\r\ngoes\r\n").await;
    drop(spool);
    // Run 2: Z delivered (its done record in segment 2), W in and out.
    let spool = reopen(dir.path());
    spool.remove(&z);
    let w = commit(&spool, "Subject: W\r\n\r\nbrief\r\n").await;
    spool.remove(&w);
    spool.flush().await;
    drop(spool);
    // Run 3: segment 2 holds nothing live and is reclaimed; segment 1
    // (half live) stays, so Z's done record must move on.
    let spool = reopen(dir.path());
    spool.flush().await;
    commit(&spool, "Subject: V\r\n\r\nnew\r\n").await;
    assert!(
        !segments(dir.path()).contains(&2),
        "{:?}",
        segments(dir.path())
    );
    assert!(segments(dir.path()).contains(&1));
    drop(spool);
    let spool = reopen(dir.path());
    assert_eq!(
        contents(&spool),
        ["Subject: V\r\n\r\nnew\r\n", "Subject: X\r\n\r\nstays\r\n"]
    );
    assert!(spool.contains(&x) && !spool.contains(&z));
}

/// The fuzz target's seeds are segments as the relay writes them.
#[test]
fn the_fuzz_seeds_read_as_written() {
    let kinds = |bytes: &[u8]| -> Vec<String> {
        segment_steps(bytes)
            .into_iter()
            .map(|step| match step {
                SegmentStep::Record { kind, .. } => format!("record {kind}"),
                SegmentStep::Damaged { .. } => "damaged".into(),
                SegmentStep::Torn { .. } => "torn".into(),
            })
            .collect()
    };
    let seeds = env!("CARGO_MANIFEST_DIR").to_string() + "/fuzz/corpus/segment/";
    let read = |name: &str| fs::read(format!("{seeds}{name}")).unwrap_or_default();
    assert_eq!(
        kinds(&read("seed-two-messages-and-done")),
        ["record 1", "record 1", "record 2"]
    );
    assert_eq!(kinds(&read("seed-torn-tail")), ["record 1", "torn"]);
    assert_eq!(
        kinds(&read("seed-damaged-middle")),
        ["record 1", "damaged", "record 2"]
    );
}

/// The kinds and ids of the records in segment `n`, and the states' JSON.
pub(super) fn records(dir: &Path, n: u32) -> Vec<(record::Kind, String, String)> {
    let bytes = fs::read(segment_path(&dir.join("segments"), n)).unwrap_or_default();
    let mut found = Vec::new();
    index::walk(&bytes, |step| {
        if let index::Step::Record(_, r) = step {
            let json = match r.kind {
                record::Kind::State => String::from_utf8_lossy(r.payload).into_owned(),
                _ => String::new(),
            };
            found.push((r.kind, r.id.to_string(), json));
        }
    });
    found
}

#[tokio::test]
async fn compaction_copies_a_message_with_its_latest_state_from_wherever_it_is() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Run 1: K with two states, and L, much larger, in segment 1.
    let spool = reopen(dir.path());
    let kept = commit(&spool, "Subject: deferred\r\n\r\nstays\r\n").await;
    spool.save_state(&kept, Summary::default(), b"\"first\"".to_vec());
    let large = commit(
        &spool,
        &format!("Subject: L\r\n\r\n{}\r\n", "x".repeat(4000)),
    )
    .await;
    spool.save_state(&kept, Summary::default(), b"\"second\"".to_vec());
    spool.flush().await;
    drop(spool);
    // Run 2: K's latest state in segment 2.
    let spool = reopen(dir.path());
    assert_eq!(spool.state(&kept), Some(b"\"second\"".to_vec()));
    spool.save_state(&kept, Summary::default(), b"\"third\"".to_vec());
    spool.flush().await;
    drop(spool);
    assert_eq!(segments(dir.path()), [1, 2]);
    // Run 3: L delivered, segment 1 is mostly dead; K moves on with its
    // latest state (from segment 2), after which segment 2 holds nothing
    // live. The older states stay behind.
    let spool = reopen(dir.path());
    spool.remove(&large);
    spool.flush().await;
    spool.flush().await;
    assert_eq!(segments(dir.path()), [3]);
    use record::Kind::{Done, Message, State};
    let third = String::from("\"third\"");
    // L's done record may be written before the compaction or after it
    // (the removal queues the segment at once): either order is sound.
    let mut found = records(dir.path(), 3);
    let done = found.iter().position(|r| r.0 == Done);
    assert_eq!(
        done.map(|at| found.remove(at)),
        Some((Done, large, String::new()))
    );
    assert_eq!(
        found,
        [
            (Message, kept.clone(), String::new()),
            (State, kept.clone(), third)
        ]
    );
    assert_eq!(spool.state(&kept), Some(b"\"third\"".to_vec()));
    drop(spool);
    let spool = reopen(dir.path());
    assert_eq!(spool.state(&kept), Some(b"\"third\"".to_vec()));
    assert_eq!(contents(&spool), ["Subject: deferred\r\n\r\nstays\r\n"]);
}

#[tokio::test]
async fn a_large_message_s_state_lives_in_a_segment_and_leaves_with_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = reopen(dir.path());
    let large = commit(&spool, &"y".repeat(2 * MEMORY_LIMIT)).await;
    let gone = commit(&spool, &"z".repeat(2 * MEMORY_LIMIT)).await;
    spool.save_state(&large, Summary::default(), b"\"large\"".to_vec());
    spool.save_state(&gone, Summary::default(), b"\"gone\"".to_vec());
    spool.flush().await;
    spool.remove(&gone);
    assert_eq!(spool.state(&gone), None);
    drop(spool);
    let spool = reopen(dir.path());
    assert_eq!(spool.state(&large), Some(b"\"large\"".to_vec()));
    assert_eq!(spool.state(&gone), None);
    // The gone message's state counts no more: only the large one's is live.
    let index = committer::lock(&spool.inner.view.index);
    let live: u32 = index.segments.values().map(|u| u.live).sum();
    assert_eq!(live, 1);
}
