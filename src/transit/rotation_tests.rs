//! Rotation of the journal into the day's snapshot: a crash at each of
//! its steps, readers racing it, many rotations, the size it keeps the
//! folder to, finished days and late events.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::tests::{at, event, open, sample, today, DAY, NOON};
use super::*;
use crate::transit::aggregate::{FAILURE_DETAIL_LIMIT, OTHER_DETAIL};
use crate::transit::{Method, ResultType};

fn open_rotating(spool: &Path, rotation: Rotation) -> Store {
    Store::open_with(spool, Duration::from_secs(30 * DAY), at(NOON), rotation)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn read(spool: &Path, day: Date) -> DayCounts {
    files::read_day(&journal::folder(spool), day)
        .unwrap_or_else(|e| panic!("{e}"))
        .counts
}

/// Sessions counted in `counts`, all domains and policies.
fn sessions(counts: &DayCounts) -> u64 {
    counts
        .domains
        .values()
        .flat_map(|d| &d.policies)
        .map(|p| p.successful_sessions + p.failed_sessions)
        .sum()
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
    for entry in std::fs::read_dir(from)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Events of a phase: `n` sessions to `domain`.
fn phase(store: &Store, domain: &str, n: usize) {
    for _ in 0..n {
        store.record(event(domain, Method::MtaSts, None));
    }
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A crash's files: what it interrupted, the snapshot, the temp file
/// beside it, whether segment 2 is still there.
type Step<'a> = (&'a str, &'a [u8], Option<&'a [u8]>, bool);

#[test]
fn a_crash_at_each_step_of_a_rotation_counts_every_event_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let base = dir.path().join("base");
    let folder = journal::folder(&base);
    let never = Rotation {
        every: Duration::from_secs(86_400),
        bytes: u64::MAX,
    };
    let store = open_rotating(&base, never);
    let writer = &store.inner.writer;
    phase(&store, "one.test", 3);
    writer
        .rotate(today(), false)
        .unwrap_or_else(|e| panic!("{e}"));
    phase(&store, "two.test", 4);
    // The files before the rotation of segment 2 ...
    let old_snapshot = bytes(&files::snapshot_path(&folder, today()));
    let segment_two = bytes(&files::segment_path(&folder, today(), 2));
    writer
        .rotate(today(), false)
        .unwrap_or_else(|e| panic!("{e}"));
    // ... and after it, with events in segment 3 and a crash.
    phase(&store, "three.test", 5);
    let expected = store.day(today());
    assert_eq!(sessions(&expected), 12);
    std::mem::forget(store);
    let new_snapshot = bytes(&files::snapshot_path(&folder, today()));
    assert!(!files::segment_path(&folder, today(), 2).exists());

    let snapshot = files::snapshot_path(&folder, today());
    let temp = snapshot.with_extension("json.tmp");
    let two = files::segment_path(&folder, today(), 2);
    // Each step's files: (what, snapshot, temp file, segment 2 left).
    let steps: [Step; 5] = [
        ("segment 3 opened", &old_snapshot, None, true),
        (
            "temp snapshot torn",
            &old_snapshot,
            Some(b"{\"version\":2,\"ne"),
            true,
        ),
        (
            "temp snapshot synced",
            &old_snapshot,
            Some(&new_snapshot),
            true,
        ),
        ("renamed, segment 2 left", &new_snapshot, None, true),
        ("segment 2 removed", &new_snapshot, None, false),
    ];
    for (i, (step, snapshot_bytes, temp_bytes, two_left)) in steps.into_iter().enumerate() {
        let spool = dir.path().join(format!("step{i}"));
        let copy = journal::folder(&spool);
        copy_folder(&folder, &copy);
        write(
            &copy.join(snapshot.file_name().unwrap_or_default()),
            snapshot_bytes,
        );
        if let Some(temp_bytes) = temp_bytes {
            write(&copy.join(temp.file_name().unwrap_or_default()), temp_bytes);
        }
        if two_left {
            write(
                &copy.join(two.file_name().unwrap_or_default()),
                &segment_two,
            );
        }
        assert_eq!(read(&spool, today()), expected, "{step}: read");
        // The relay restarts on these files and goes on counting.
        let store = open_rotating(&spool, never);
        assert_eq!(store.day(today()), expected, "{step}: restart");
        store.record(event("three.test", Method::MtaSts, None));
        let counted = store.day(today());
        store
            .inner
            .writer
            .rotate(today(), false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&spool, today()), counted, "{step}: after");
        assert_eq!(sessions(&counted), 13, "{step}");
    }
}

#[test]
fn readers_racing_rotations_never_miss_nor_double_count() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = dir.path().to_path_buf();
    let store = open_rotating(
        &spool,
        Rotation {
            every: Duration::ZERO,
            bytes: 2048,
        },
    );
    const EVENTS: u64 = 20_000;
    let done = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..EVENTS {
                store.record(event(&format!("d{}.test", i % 7), Method::Dane, None));
                done.fetch_add(1, Ordering::SeqCst);
                if i % 50 == 0 {
                    store.flush().unwrap_or_else(|e| panic!("{e}"));
                }
            }
            finished.store(true, Ordering::SeqCst);
        });
        // Readers on both sides of each rotation step.
        for _ in 0..3 {
            scope.spawn(|| {
                let mut reads = 0;
                // Bounded: the writer ends; a read is a few milliseconds.
                while !finished.load(Ordering::SeqCst) && reads < 1_000_000 {
                    let before = done.load(Ordering::SeqCst);
                    let counted = sessions(&read(&spool, today()));
                    let after = done.load(Ordering::SeqCst);
                    assert!(
                        before <= counted && counted <= after + 1,
                        "read {counted} between {before} and {after} recorded"
                    );
                    reads += 1;
                }
            });
        }
    });
    store.flush().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sessions(&read(&spool, today())), EVENTS);
    assert_eq!(read(&spool, today()), store.day(today()));
}

/// The bytes of the files in `folder`.
fn folder_size(folder: &Path) -> u64 {
    std::fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .filter_map(|entry| entry.metadata().ok())
        .map(|metadata| metadata.len())
        .sum()
}

#[test]
fn many_rotations_keep_the_folder_small_and_every_count() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = dir.path().to_path_buf();
    let folder = journal::folder(&spool);
    const SEGMENT: u64 = 64 << 10;
    let store = open_rotating(
        &spool,
        Rotation {
            every: Duration::from_secs(3600),
            bytes: SEGMENT,
        },
    );
    const EVENTS: usize = 200_000;
    let mut largest = 0;
    for i in 0..EVENTS {
        let failure = (i % 10 == 0).then_some(ResultType::CertificateExpired);
        store.record(event(
            &format!("d{}.test", i % 50),
            Method::Tls13Unverified,
            failure,
        ));
        if i % 5_000 == 4_999 {
            store.flush().unwrap_or_else(|e| panic!("{e}"));
            largest = largest.max(folder_size(&folder));
        }
    }
    store.flush().unwrap_or_else(|e| panic!("{e}"));
    // One segment short of its rotation size, and a snapshot of 50 domains.
    assert!(largest < SEGMENT + (64 << 10), "{largest} bytes");
    let counts = read(&spool, today());
    assert_eq!(sessions(&counts), EVENTS as u64);
    assert_eq!(counts, store.day(today()));
    let segments = files::segments(&folder, today()).unwrap_or_else(|e| panic!("{e}"));
    assert!(segments.len() <= 1, "{segments:?}");
    assert!(segments.first().is_some_and(|n| *n > 20), "{segments:?}");
}

#[test]
fn a_finished_day_is_compacted_while_running_and_late_events_count_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = dir.path().to_path_buf();
    let folder = journal::folder(&spool);
    let store = open(&spool, NOON);
    sample(&store);
    let mut next_day = event("a.test", Method::MtaSts, None);
    next_day.at = at(NOON + DAY);
    store.record(next_day);
    let tomorrow = journal::day_of(at(NOON + DAY));
    // The sync thread's tick after midnight.
    let writer = &store.inner.writer;
    writer
        .rotate_due(tomorrow)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(files::segments(&folder, today())
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());
    assert!(files::snapshot_path(&folder, today()).exists());
    assert_eq!(read(&spool, today()), store.day(today()));
    // A late event of the finished day: its own segment, then folded in.
    let mut late = event("late.test", Method::Dane, None);
    late.at = at(NOON + DAY / 4);
    store.record(late);
    assert_eq!(read(&spool, today()), store.day(today()));
    writer
        .rotate_due(tomorrow)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(&spool, today()), store.day(today()));
    assert_eq!(read(&spool, today()).domains["late.test"].policies.len(), 1);
    assert!(files::segments(&folder, today())
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());
    // Tomorrow's segment stays open, counted once.
    assert_eq!(sessions(&read(&spool, tomorrow)), 1);
}

#[test]
fn failure_details_beyond_the_limit_are_counted_together() {
    let mut counts = DayCounts::default();
    for i in 0..FAILURE_DETAIL_LIMIT + 50 {
        let mut failed = event("many.test", Method::Tls12Unverified, None);
        failed.failure = Some(crate::transit::Failure {
            result_type: ResultType::ValidationFailure,
            detail: "handshake failed".into(),
        });
        failed.receiving_ip = format!("192.0.2.{}", i % 250).parse().ok();
        failed.mx_host = format!("mx{i}.many.test");
        counts.add(&failed);
    }
    let policy = &counts.domains["many.test"].policies[0];
    assert_eq!(policy.failures.len(), FAILURE_DETAIL_LIMIT + 1);
    let other: Vec<_> = policy
        .failures
        .iter()
        .filter(|f| f.mx_host == OTHER_DETAIL)
        .collect();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].sessions, 50);
    let total: u64 = policy.failures.iter().map(|f| f.sessions).sum();
    assert_eq!(total, policy.failed_sessions);
    // Merging two such days keeps the bound.
    let again = counts.clone();
    counts.merge(again);
    assert_eq!(
        counts.domains["many.test"].policies[0].failures.len(),
        FAILURE_DETAIL_LIMIT + 1
    );
}

#[test]
fn the_first_versions_files_are_read_and_folded_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let scratch = dir.path().join("scratch");
    let store = open(&scratch, NOON);
    sample(&store);
    let expected = store.day(today());
    drop(store);
    let lines = bytes(&files::segment_path(&journal::folder(&scratch), today(), 1));
    // The first version: one journal per day, opened with a segment line.
    let spool = dir.path().join("old");
    let folder = journal::folder(&spool);
    std::fs::create_dir_all(&folder).unwrap_or_else(|e| panic!("{e}"));
    let mut journal_text = b"{\"segment\":7}\n".to_vec();
    journal_text.extend_from_slice(&lines);
    let legacy = files::segment_path(&folder, today(), 0);
    assert!(legacy.ends_with("2026-12-07.jsonl"), "{}", legacy.display());
    write(&legacy, &journal_text);
    assert_eq!(read(&spool, today()), expected);
    // Its compacted day beside the journal a crash left: counted once.
    let v1 = serde_json::json!({
        "version": 1,
        "journal_segment": 7,
        "journal_bytes": journal_text.len(),
        "counts": expected,
    });
    write(
        &files::snapshot_path(&folder, today()),
        v1.to_string().as_bytes(),
    );
    assert_eq!(read(&spool, today()), expected);
    std::fs::remove_file(files::snapshot_path(&folder, today())).unwrap_or_else(|e| panic!("{e}"));
    // The relay folds the old journal into a snapshot and goes on.
    let store = open(&spool, NOON);
    assert_eq!(store.day(today()), expected);
    assert!(!legacy.exists());
    store.record(event("a.test", Method::MtaSts, None));
    assert_eq!(read(&spool, today()), store.day(today()));
}
