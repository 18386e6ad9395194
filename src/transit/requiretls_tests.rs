//! The REQUIRETLS counts (RFC 8689) through the store: journal lines with
//! and without them, restarts and the day's snapshot, and what TLS-RPT
//! and `tlsrelay report` make of a flagged message returned.

use super::tests::{at, event, open, sample, today, DAY, NOON};
use super::*;
use crate::transit::tls_rpt::{reports, Submitter};
use crate::transit::{report, Method};

/// A flagged message delivered by DANE.
fn flagged(domain: &str) -> Event {
    Event {
        requiretls_delivered: 1,
        ..event(domain, Method::Dane, None)
    }
}

/// A flagged message returned: the event delivery records for it.
fn returned(domain: &str) -> Event {
    Event::returned_for_requiretls(at(NOON), domain)
}

fn line(event: &Event) -> String {
    let compact = journal::Line::Event(journal::Compact::of(event, 0));
    serde_json::to_string(&compact).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn journal_lines_carry_the_counts_only_when_flagged_and_old_lines_read_as_zero() {
    // Unflagged: the line an earlier release wrote, and reads.
    let old =
        r#"["a.test",0,"mx.example.test","127.0.0.2","127.0.0.1","dane","1.3",null,1,1,false]"#;
    assert_eq!(line(&event("a.test", Method::Dane, None)), old);
    let delivered = line(&flagged("a.test"));
    assert!(delivered.ends_with(",1,1,false,1,0]"), "{delivered}");
    let gone = line(&returned("a.test"));
    assert!(gone.ends_with(",0,0,false,0,1]"), "{gone}");

    let policy = serde_json::to_string(&journal::Line::Policy {
        policy: 0,
        is: event("a.test", Method::Dane, None).policy,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let text = format!("{policy}\n{old}\n{delivered}\n{delivered}\n{gone}\n");
    let replayed = journal::replay(text.as_bytes());
    assert_eq!(replayed.torn_lines, 0);
    let a = &replayed.counts.domains["a.test"];
    assert_eq!((a.requiretls_delivered, a.requiretls_returned), (2, 1));
    assert_eq!(a.policies.len(), 1, "the returned message opened no record");
    assert_eq!(a.policies[0].successful_sessions, 3);
    assert_eq!(a.policies[0].messages_by_method[&Method::Dane], 3);
}

#[test]
fn flagged_counts_survive_a_restart_and_the_days_snapshot() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let folder = journal::folder(dir.path());
    let store = open(dir.path(), NOON);
    sample(&store);
    store.record(flagged("a.test"));
    store.record(flagged("a.test"));
    store.record(returned("a.test"));
    store.record(returned("r.test"));
    let counts = store.day(today());
    let a = &counts.domains["a.test"];
    assert_eq!((a.requiretls_delivered, a.requiretls_returned), (2, 1));
    let r = &counts.domains["r.test"];
    assert_eq!((r.requiretls_delivered, r.requiretls_returned), (0, 1));
    assert!(!r.has_sessions(), "{r:?}");
    // A crash, a restart: the journal replayed.
    std::mem::forget(store);
    assert_eq!(open(dir.path(), NOON + 60).day(today()), counts);
    // Two days later the day is one snapshot, the counts in it.
    drop(open(dir.path(), NOON + 2 * DAY));
    assert!(!files::segment_path(&folder, today(), 1).exists());
    let read = files::read_day(&folder, today()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.counts, counts);

    // A day without flagged mail: a snapshot as before the counts.
    let plain = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    sample(&open(plain.path(), NOON));
    drop(open(plain.path(), NOON + 2 * DAY));
    let snapshot = files::snapshot_path(&journal::folder(plain.path()), today());
    let text = std::fs::read_to_string(snapshot).unwrap_or_else(|e| panic!("{e}"));
    assert!(!text.contains("requiretls"), "{text}");
}

#[test]
fn a_returned_message_adds_nothing_to_tls_rpt_nor_to_sessions_or_methods() {
    let mut without = DayCounts::default();
    let mut with = DayCounts::default();
    for method in [Method::Dane, Method::Plaintext] {
        without.add(&event("a.test", method, None));
        with.add(&event("a.test", method, None));
    }
    with.add(&returned("a.test"));
    with.add(&returned("r.test"));
    with.add(&returned("r.test"));

    let who = Submitter {
        organization_name: "Example".into(),
        contact_info: "mailto:tlsrpt@example.test".into(),
        submitter: "relay.example.test".into(),
    };
    let day = today();
    assert_eq!(
        reports(day, &with, &who, None),
        reports(day, &without, &who, None)
    );
    assert!(reports(day, &with, &who, Some("r.test")).is_empty());
    assert_eq!(
        with.reported_domains()
            .map(|(d, _)| d.as_str())
            .collect::<Vec<_>>(),
        ["a.test"]
    );

    let build = |counts: &DayCounts| report::build(&[(day, counts.clone())].into(), day, day, None);
    let (before, after) = (build(&without), build(&with));
    assert_eq!(after.totals.messages, before.totals.messages);
    assert_eq!(after.totals.sessions, before.totals.sessions);
    assert_eq!(
        after.days[0].sessions_by_method,
        before.days[0].sessions_by_method
    );
    assert_eq!(
        (
            after.totals.requiretls_delivered,
            after.totals.requiretls_returned
        ),
        (0, 3)
    );
    let row = |name: &str| after.domains.iter().find(|d| d.domain == name);
    let r = row("r.test").unwrap_or_else(|| panic!("{after:?}"));
    assert_eq!((r.messages, r.sessions, r.requiretls_returned), (0, 0, 2));
    assert!(r.failures.is_empty() && r.policy_deferrals == 0, "{r:?}");
    let a = row("a.test").unwrap_or_else(|| panic!("{after:?}"));
    assert_eq!((a.messages, a.sessions, a.requiretls_returned), (2, 2, 1));
}
