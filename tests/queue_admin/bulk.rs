//! The `postsuper`-like forms: `delete --all [--domain D] [--deferred]`,
//! `hold` / `release` (ID, `--domain D`, `--all`) and the `list` filters,
//! against a running relay and a stopped one. What the next hop received
//! is the proof that a held message is not delivered.

use std::time::Duration;

use super::support::relay::Relay;
use super::{
    closed_gate, id_of, kept, listed, open, queue, relay_to, relay_with_queue, send_to,
    wait_deferred, wait_kept,
};

/// The subjects `queue list --json ARGS` shows, sorted, with whether each is held.
fn subjects(relay: &Relay, args: &[&str]) -> Vec<(String, bool)> {
    let mut all = vec!["list", "--json"];
    all.extend_from_slice(args);
    let (code, out, err) = queue(relay, &all);
    assert_eq!(code, 0, "{args:?}: {err}");
    let entries: serde_json::Value = serde_json::from_str(&out).expect("list json");
    let ids: Vec<(String, bool)> = entries
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            let id = e["id"].as_str().unwrap_or_default().to_string();
            (id, e["held"].as_bool().expect("held is listed"))
        })
        .collect();
    let all = listed(relay);
    let mut subjects: Vec<(String, bool)> = ids
        .into_iter()
        .map(|(id, held)| {
            let subject = all
                .iter()
                .find(|(listed, _, _)| *listed == id)
                .map(|(_, subject, _)| subject.clone())
                .unwrap_or_default();
            (subject, held)
        })
        .collect();
    subjects.sort();
    subjects
}

/// Waits (bounded) until `n` messages are left in the queue.
fn wait_deferred_or_held(relay: &Relay, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while listed(relay).len() != n {
        assert!(std::time::Instant::now() < deadline, "{}", relay.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn want(subjects: &[(&str, bool)]) -> Vec<(String, bool)> {
    subjects
        .iter()
        .map(|(s, held)| (s.to_string(), *held))
        .collect()
}

/// `queue ARGS` succeeds and prints `expected`.
fn ok(relay: &Relay, args: &[&str], expected: &str) {
    let (code, out, err) = queue(relay, args);
    assert_eq!((code, out.trim()), (0, expected), "{args:?}: {err}");
}

/// Nothing more than `n` messages reaches the gate for a while.
fn still_kept(gate: &super::Receiver, n: usize) {
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(kept(gate).len(), n, "{:?}", kept(gate));
}

#[test]
fn held_mail_waits_with_its_next_hop_up_and_goes_when_released() {
    let gate = closed_gate();
    let mut relay = relay_to(&gate);
    send_to(&relay, "far", "bob@far.test");
    send_to(&relay, "near", "carol@near.test");
    send_to(&relay, "idn", "dora@XN--BCHER-KVA.test");
    let listed = wait_deferred(&relay, 3);
    let far = id_of(&listed, "far");

    // By domain, in canonical form: the U-label names the A-label domain.
    ok(
        &relay,
        &["hold", "--domain", "Bücher.test"],
        "1 message(s) held",
    );
    ok(&relay, &["hold", &far], &format!("{far}: held"));
    ok(&relay, &["hold", &far], &format!("{far}: on hold already"));
    assert_eq!(
        subjects(&relay, &["--held"]),
        want(&[("far", true), ("idn", true)])
    );
    assert_eq!(
        subjects(&relay, &["--domain", "near.test"]),
        want(&[("near", false)])
    );
    assert_eq!(subjects(&relay, &["--domain", "nowhere.test"]), want(&[]));
    let (_, text, _) = queue(&relay, &["list", "--domain", "nowhere.test"]);
    assert_eq!(text, "No queued message matches.\n");
    let (_, text, _) = queue(&relay, &["list"]);
    assert!(text.contains("<alice@sender.test>  (held)"), "{text}");
    assert!(text.contains("held       bob@far.test"), "{text}");
    assert!(text.contains(", 2 message(s) held"), "{text}");
    let (_, text, _) = queue(&relay, &["show", &far]);
    assert!(
        text.contains(&format!(
            "attempts:  1; held: not delivered, never expires, until `tlsrelay queue release {far}`"
        )),
        "{text}"
    );

    // The next hop is up: only the message not held goes, even when asked.
    open(&gate);
    let (code, _, err) = queue(&relay, &["retry", &far]);
    assert_eq!(code, 1, "retrying a held message is refused");
    assert!(err.contains("on hold, not tried"), "{err}");
    ok(&relay, &["retry", "--all"], "1 message(s) due now");
    let received = wait_kept(&gate, 1);
    assert!(received[0].2.contains("Subject: near"), "{received:?}");
    still_kept(&gate, 1);

    // The hold is in the message's state: it survives a restart, and
    // `retry --all` passes held messages by.
    assert!(relay.terminate().success());
    relay.launch();
    ok(&relay, &["retry", "--all"], "0 message(s) due now");
    still_kept(&gate, 1);
    assert_eq!(subjects(&relay, &[]), want(&[("far", true), ("idn", true)]));

    ok(&relay, &["release", &far], &format!("{far}: released"));
    let received = wait_kept(&gate, 2);
    assert!(received[1].2.contains("Subject: far"), "{received:?}");
    ok(&relay, &["release", "--all"], "1 message(s) released");
    let received = wait_kept(&gate, 3);
    assert!(received[2].2.contains("Subject: idn"), "{received:?}");
    let (code, _, err) = queue(&relay, &["release", &far]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no such message in the queue"), "{err}");
}

/// `max_age` passes while a message is held: no bounce, no delay notice;
/// released, it is delivered.
#[test]
fn a_held_message_does_not_expire() {
    let gate = closed_gate();
    // Long enough for the first attempt and the hold on a loaded machine
    // (3 s was not: the message bounced before `hold` reached it).
    let relay = relay_with_queue(&gate, "retry_intervals = [\"1h\"]\nmax_age = \"10s\"");
    send_to(&relay, "old", "bob@far.test");
    let listed = wait_deferred(&relay, 1);
    let old = id_of(&listed, "old");
    ok(&relay, &["hold", "--all"], "1 message(s) held");
    std::thread::sleep(Duration::from_secs(12));
    // Still there, alone: no notice was queued, nothing was attempted.
    assert_eq!(subjects(&relay, &[]), want(&[("old", true)]));
    assert!(
        !relay.log().contains("delivery status notification"),
        "{}",
        relay.log()
    );
    open(&gate);
    ok(&relay, &["release", &old], &format!("{old}: released"));
    let received = wait_kept(&gate, 1);
    assert_eq!(received[0].0, "alice@sender.test", "{received:?}");
    assert!(received[0].2.contains("Subject: old"), "{received:?}");
}

#[test]
fn delete_all_by_domain_and_deferred_against_a_running_relay() {
    let gate = closed_gate();
    let relay = relay_to(&gate);
    send_to(&relay, "far1", "bob@far.test");
    send_to(&relay, "far2", "eve@FAR.test");
    send_to(&relay, "near", "carol@near.test");
    wait_deferred(&relay, 3);
    // Attempted already, all three; a fourth never was.
    ok(
        &relay,
        &["hold", "--domain", "near.test"],
        "1 message(s) held",
    );
    ok(
        &relay,
        &["delete", "--all", "--domain", "far.test", "--deferred"],
        "2 message(s) deleted",
    );
    assert_eq!(subjects(&relay, &[]), want(&[("near", true)]));
    ok(
        &relay,
        &["delete", "--all", "--domain", "far.test"],
        "0 message(s) deleted",
    );
    ok(&relay, &["delete", "--all"], "1 message(s) deleted");
    assert_eq!(subjects(&relay, &[]), want(&[]));
    open(&gate);
    still_kept(&gate, 0);
}

#[test]
fn with_no_relay_running_hold_release_and_delete_act_on_the_spool() {
    let gate = closed_gate();
    let mut relay = relay_to(&gate);
    send_to(&relay, "far", "bob@far.test");
    send_to(&relay, "near", "carol@near.test");
    send_to(&relay, "other", "dave@other.test");
    let listed = wait_deferred(&relay, 3);
    let near = id_of(&listed, "near");
    assert!(relay.terminate().success());

    ok(
        &relay,
        &["hold", "--domain", "far.test"],
        "1 message(s) held",
    );
    ok(&relay, &["hold", &near], &format!("{near}: held"));
    assert_eq!(
        subjects(&relay, &["--held"]),
        want(&[("far", true), ("near", true)])
    );
    ok(
        &relay,
        &["release", "--domain", "near.test"],
        "1 message(s) released",
    );
    ok(
        &relay,
        &["delete", "--all", "--domain", "other.test", "--deferred"],
        "1 message(s) deleted",
    );
    let (code, _, err) = queue(&relay, &["hold", "0123456789ABCDEF00"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no such message in the queue"), "{err}");
    // Retry offline leaves a held message held, as the running relay does.
    let far = id_of(&listed, "far");
    let (code, _, err) = queue(&relay, &["retry", &far]);
    assert_eq!(code, 1, "retrying a held message is refused: {err}");
    assert!(err.contains("on hold, not tried"), "{err}");
    ok(
        &relay,
        &["retry", "--all"],
        "1 message(s) due now (1 on hold not tried: `tlsrelay queue release` first); no relay is running, they are tried when it starts",
    );

    // Released: due at once when the relay starts; the held one waits.
    open(&gate);
    relay.launch();
    let received = wait_kept(&gate, 1);
    assert!(received[0].2.contains("Subject: near"), "{received:?}");
    wait_deferred_or_held(&relay, 1);
    ok(&relay, &["retry", "--all"], "0 message(s) due now");
    still_kept(&gate, 1);
    assert_eq!(subjects(&relay, &[]), want(&[("far", true)]));
}

#[test]
fn bad_bulk_arguments_are_user_errors() {
    let gate = closed_gate();
    let relay = relay_to(&gate);
    for args in [
        &["hold"][..],
        &["hold", "--all", "--domain", "far.test"],
        &["release", "0123456789ABCDEF00", "--all"],
        &["delete", "--domain", "far.test"],
        &["delete", "0123456789ABCDEF00", "--deferred"],
        &["hold", "--domain", "bad..domain"],
        &["list", "--domain", "[not an address]"],
    ] {
        let (code, out, err) = queue(&relay, args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
    }
}
