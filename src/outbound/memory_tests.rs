//! The memory's rule (DESIGN.md §5), with the clock in the test's hand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;

const SERVER: &str = "192.0.2.1:25";
const DAY: i64 = 86_400;
const MIN: i64 = 60;
const T0: i64 = 1_800_000_000;

/// A book where Modern failed at each of `minutes` (after T0).
fn failed_at(minutes: &[i64]) -> Book {
    let mut book = Book::default();
    for m in minutes {
        book.failed(
            TlsLevel::Opportunistic,
            SERVER,
            "mx.example.test",
            Rung::Modern,
            T0 + m * MIN,
            DAY,
        );
    }
    book
}

fn start_at(book: &mut Book, minute: i64) -> (Rung, String) {
    let start = book.start(
        TlsLevel::Opportunistic,
        true,
        SERVER,
        T0 + minute * MIN,
        true,
    );
    (start.rung, start.note())
}

/// Failures (minutes after T0) and the minute asked -> where the ladder starts.
#[test]
fn three_failures_over_thirty_minutes_make_a_rung_broken() {
    let table: [(&[i64], i64, Rung, &str); 9] = [
        (&[], 0, Rung::Modern, "-"),
        (&[0], 1, Rung::Modern, "-"),
        (&[0, 40], 41, Rung::Modern, "-"),
        // Three at once: an attacker's burst, or one fault seen by three messages.
        (&[0, 0, 0], 1, Rung::Modern, "-"),
        (&[0, 10, 29], 30, Rung::Modern, "-"),
        (&[0, 10, 30], 31, Rung::Tls12, "skipped-rung-modern"),
        (&[0, 10, 30], 89, Rung::Tls12, "skipped-rung-modern"),
        // An hour after the last try, it is tried first again.
        (&[0, 10, 30], 90, Rung::Modern, "retried-rung-modern"),
        // The entry lives a day from its first failure, then it is gone.
        (&[0, 10, 30], 24 * 60, Rung::Modern, "-"),
    ];
    for (failures, minute, rung, note) in table {
        let mut book = failed_at(failures);
        assert_eq!(
            start_at(&mut book, minute),
            (rung, note.to_string()),
            "failures at {failures:?}, asked at minute {minute}"
        );
    }
}

#[test]
fn the_hourly_retry_is_claimed_once_and_a_success_forgets() {
    let mut book = failed_at(&[0, 10, 30]);
    assert_eq!(start_at(&mut book, 90).1, "retried-rung-modern");
    // Claimed: the attempts right after skip it again, for an hour.
    assert_eq!(start_at(&mut book, 91).1, "skipped-rung-modern");
    assert_eq!(start_at(&mut book, 149).1, "skipped-rung-modern");
    assert_eq!(start_at(&mut book, 150).1, "retried-rung-modern");
    // The retry worked: forgotten at once.
    assert!(book.succeeded(SERVER, Rung::Modern));
    assert_eq!(book.entries().count(), 0);
    assert_eq!(start_at(&mut book, 151), (Rung::Modern, "-".into()));
}

#[test]
fn any_success_forgets_even_before_the_rung_is_broken() {
    let mut book = failed_at(&[0, 10]);
    book.failed(TlsLevel::Opportunistic, SERVER, "mx", Rung::Tls12, T0, DAY);
    // A success on TLS 1.2 says nothing about the top rung.
    assert!(book.succeeded(SERVER, Rung::Tls12));
    assert_eq!(
        book.entries().map(|e| e.rung).collect::<Vec<_>>(),
        [Rung::Modern]
    );
    // Another server's success changes nothing.
    assert!(!book.succeeded("192.0.2.2:25", Rung::Modern));
    assert!(book.succeeded(SERVER, Rung::Modern));
    // The count starts again: two more failures are not enough.
    let mut book = Book::default();
    for m in [40, 80] {
        book.failed(
            TlsLevel::Opportunistic,
            SERVER,
            "mx",
            Rung::Modern,
            T0 + m * MIN,
            DAY,
        );
    }
    assert_eq!(start_at(&mut book, 81).0, Rung::Modern);
}

#[test]
fn forced_levels_neither_record_nor_read_and_zero_lifetime_is_off() {
    let mut book = failed_at(&[0, 10, 30]);
    let forced = book.start(TlsLevel::VerifyHost, true, SERVER, T0 + 31 * MIN, true);
    assert_eq!(forced, policy::Start::TOP);
    let mut other = Book::default();
    for m in [0, 10, 30] {
        assert!(!other.failed(
            TlsLevel::Required,
            SERVER,
            "mx",
            Rung::Modern,
            T0 + m * MIN,
            DAY
        ));
        assert!(!other.failed(
            TlsLevel::Opportunistic,
            SERVER,
            "mx",
            Rung::Modern,
            T0 + m * MIN,
            0
        ));
    }
    assert_eq!(other.entries().count(), 0);
}

#[test]
fn both_tls_rungs_broken_start_in_plaintext_only_with_fallback() {
    let mut book = failed_at(&[0, 10, 30]);
    for m in [0, 10, 30] {
        book.failed(
            TlsLevel::Opportunistic,
            SERVER,
            "mx",
            Rung::Tls12,
            T0 + m * MIN,
            DAY,
        );
    }
    assert_eq!(
        start_at(&mut book, 31),
        (
            Rung::Plaintext,
            "skipped-rung-modern,skipped-rung-tls12".into()
        )
    );
    let strict = book.start(TlsLevel::Opportunistic, false, SERVER, T0 + 31 * MIN, true);
    assert_eq!(strict.rung, Rung::Tls12);
}

#[test]
fn forget_takes_a_name_an_ip_or_an_address() {
    let mut book = Book::default();
    for (server, host) in [
        ("192.0.2.1:25", "mx1.example.test"),
        ("192.0.2.2:25", "mx2.example.test"),
        ("[2001:db8::1]:25", "mx3.example.test"),
        ("192.0.2.4:2525", "192.0.2.4"),
    ] {
        book.failed(TlsLevel::Opportunistic, server, host, Rung::Modern, T0, DAY);
    }
    assert_eq!(book.forget(Some("MX1.example.test.")), 1);
    assert_eq!(book.forget(Some("192.0.2.2")), 1);
    assert_eq!(book.forget(Some("2001:db8::1")), 1);
    assert_eq!(book.forget(Some("192.0.2.9")), 0);
    assert_eq!(book.forget(Some("192.0.2.4:2525")), 1);
    book.failed(TlsLevel::Opportunistic, SERVER, "mx", Rung::Modern, T0, DAY);
    assert_eq!(book.forget(None), 1);
}

/// The relay's memory, with a clock the test moves.
fn memory(dir: &std::path::Path, clock: &Arc<AtomicI64>) -> TlsMemory {
    let clock = clock.clone();
    TlsMemory::open(
        dir,
        Duration::from_secs(DAY as u64),
        Arc::new(move || clock.load(Ordering::SeqCst)),
    )
}

/// Waits (bounded) for the writer thread to have saved `n` entries.
fn saved(dir: &std::path::Path, n: usize) -> String {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(dir.join("tls-memory.json")) {
            if text.matches("\"server\"").count() == n {
                return text;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the memory file never held {n} entries");
}

#[test]
fn the_file_survives_a_restart_is_private_and_an_old_one_is_ignored() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // An older relay's file: "start at plaintext for a day".
    let old = r#"{"192.0.2.1:25":["Plaintext",4102444800]}"#;
    std::fs::write(dir.path().join("tls-memory.json"), old).unwrap_or_else(|e| panic!("{e}"));
    let clock = Arc::new(AtomicI64::new(T0));
    let relay = memory(dir.path(), &clock);
    let opportunistic = TlsLevel::Opportunistic;
    assert_eq!(relay.start(opportunistic, true, SERVER), policy::Start::TOP);
    for m in [0, 10, 30] {
        clock.store(T0 + m * MIN, Ordering::SeqCst);
        relay.failed(opportunistic, SERVER, "mx.example.test", Rung::Modern);
    }
    // As the relay does at exit: the latest state on disk before the
    // restart (the file may hold an earlier save of the same entry).
    relay.save().unwrap_or_else(|e| panic!("{e}"));
    saved(dir.path(), 1);
    let mode = std::fs::metadata(dir.path().join("tls-memory.json"))
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode, 0o600);
    drop(relay);
    clock.store(T0 + 31 * MIN, Ordering::SeqCst);
    let again = memory(dir.path(), &clock);
    assert_eq!(again.peek(opportunistic, true, SERVER).rung, Rung::Tls12);
    let entries = again.list();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].state(T0 + 31 * MIN), "broken");
    assert_eq!(entries[0].state(T0 + 90 * MIN), "retry due");
    again.succeeded(SERVER, Rung::Modern);
    saved(dir.path(), 0);
}
