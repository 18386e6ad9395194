use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use super::*;
use crate::transit::{Failure, Method, Policy, PolicyType, ResultType};

pub(super) const DAY: u64 = 86_400;
/// 2026-12-07 12:00:00Z.
pub(super) const NOON: u64 = 1_796_644_800;

pub(super) fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

fn ip(text: &str) -> Option<IpAddr> {
    text.parse().ok()
}

pub(crate) fn event(domain: &str, method: Method, failure: Option<ResultType>) -> Event {
    Event {
        at: at(NOON),
        domain: domain.into(),
        policy: Policy {
            kind: PolicyType::Sts,
            strings: vec!["version: STSv1".into(), "mode: testing".into()],
            mx_host: vec!["mx.example.test".into()],
        },
        mx_host: "mx.example.test".into(),
        receiving_ip: ip("127.0.0.2"),
        sending_ip: ip("127.0.0.1"),
        method,
        tls_version: Some("1.3".into()),
        failure: failure.map(|result_type| Failure {
            result_type,
            detail: "certificate does not name mx.example.test".into(),
        }),
        sessions: 1,
        messages: 1,
        policy_deferred: false,
        requiretls_delivered: 0,
        requiretls_returned: 0,
    }
}

pub(super) fn open(spool: &Path, now: u64) -> Store {
    Store::open_at(spool, Duration::from_secs(30 * DAY), at(now)).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn today() -> Date {
    journal::day_of(at(NOON))
}

pub(super) fn sample(store: &Store) {
    for _ in 0..3 {
        store.record(event("a.test", Method::MtaSts, None));
    }
    store.record(event(
        "a.test",
        Method::Tls13Unverified,
        Some(ResultType::CertificateHostMismatch),
    ));
    let mut kept = event("b.test", Method::Plaintext, None);
    kept.sessions = 0;
    kept.policy = Policy::none();
    store.record(kept);
}

#[test]
fn counts_survive_a_crash_without_flush() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(dir.path(), NOON);
    sample(&store);
    let before = store.day(today());
    assert_eq!(before.domains["a.test"].policies[0].successful_sessions, 3);
    assert_eq!(before.domains["a.test"].policies[0].failed_sessions, 1);
    // A crash: no flush, no destructor.
    std::mem::forget(store);
    let again = open(dir.path(), NOON + 60);
    assert_eq!(again.day(today()), before);
    let read =
        files::read_day(&journal::folder(dir.path()), today()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.counts, before);
    // And counting goes on in the same journal.
    again.record(event("a.test", Method::MtaSts, None));
    assert_eq!(
        again.day(today()).domains["a.test"].policies[0].successful_sessions,
        4
    );
}

#[test]
fn a_torn_last_line_is_skipped_and_spoils_no_later_line() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(dir.path(), NOON);
    sample(&store);
    let expected = store.day(today());
    drop(store);
    let path = files::segment_path(&journal::folder(dir.path()), today(), 1);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{e}"));
    std::io::Write::write_all(&mut file, b"[\"a.test\",0,\"mx.exa")
        .unwrap_or_else(|e| panic!("{e}"));
    let again = open(dir.path(), NOON);
    assert_eq!(again.day(today()), expected);
    again.record(event("c.test", Method::Dane, None));
    again.flush().unwrap_or_else(|e| panic!("{e}"));
    let read =
        files::read_day(&journal::folder(dir.path()), today()).unwrap_or_else(|e| panic!("{e}"));
    // The restart folded the torn segment into the snapshot, skipping it.
    assert_eq!(read.torn_lines, 0);
    assert_eq!(read.counts.domains.len(), 3, "{:?}", read.counts);
}

#[test]
fn finished_days_are_compacted_once_and_old_ones_pruned() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let folder = journal::folder(dir.path());
    let store = open(dir.path(), NOON);
    sample(&store);
    let mut old = event("old.test", Method::Plaintext, None);
    old.at = at(NOON - 40 * DAY);
    store.record(old);
    let expected = store.day(today());
    drop(store);
    // Two days later: today's journal becomes one compacted file.
    let _later = open(dir.path(), NOON + 2 * DAY);
    assert!(!files::segment_path(&folder, today(), 1).exists());
    assert!(files::snapshot_path(&folder, today()).exists());
    let read = files::read_day(&folder, today()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.counts, expected);
    let old_day = journal::day_of(at(NOON - 40 * DAY));
    assert!(!files::segment_path(&folder, old_day, 1).exists(), "pruned");
    for entry in std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        let mode = entry
            .metadata()
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600, "{:?}", entry.path());
    }
    let mode = std::fs::metadata(&folder)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    assert_eq!(mode, 0o700);
}

#[test]
fn a_crash_between_compaction_and_removal_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let folder = journal::folder(dir.path());
    let store = open(dir.path(), NOON);
    sample(&store);
    let expected = store.day(today());
    drop(store);
    let journal_text =
        std::fs::read(files::segment_path(&folder, today(), 1)).unwrap_or_else(|e| panic!("{e}"));
    files::compact(&folder, today(), u64::MAX).unwrap_or_else(|e| panic!("{e}"));
    // The journal back, as if the removal had not happened.
    std::fs::write(files::segment_path(&folder, today(), 1), &journal_text)
        .unwrap_or_else(|e| panic!("{e}"));
    let read = files::read_day(&folder, today()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.counts, expected);
}

#[test]
fn beyond_the_domain_limit_events_go_under_other() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = open(dir.path(), NOON);
    for i in 0..DOMAIN_LIMIT + 5 {
        store.record(event(&format!("d{i}.test"), Method::Tls12Unverified, None));
    }
    store.record(event("d0.test", Method::Tls12Unverified, None));
    let counts = store.day(today());
    assert_eq!(counts.domains.len(), DOMAIN_LIMIT + 1);
    assert_eq!(
        counts.domains[OTHER_DOMAIN].policies[0].successful_sessions,
        5
    );
    assert_eq!(counts.domains["d0.test"].policies[0].successful_sessions, 2);
    drop(store);
    let again = open(dir.path(), NOON);
    assert_eq!(
        again.day(today()),
        counts,
        "the journal holds the bounded domain"
    );
}
