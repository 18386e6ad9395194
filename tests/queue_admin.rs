//! `tlsrelay queue list|show|retry|delete|bounce|hold|release` against a
//! running relay, and with no relay running; what the next hop received is
//! the proof.

mod support;

#[path = "queue_admin/bulk.rs"]
mod bulk;
#[path = "queue_admin/requiretls.rs"]
mod requiretls;

use std::time::{Duration, Instant};

use support::receiver::Receiver;
use support::relay::Relay;
use support::smtp::{assert_queued, Client};
use support::{arg, stderr, stdout, tlsrelay};

/// A next hop that answers `451` to every RCPT until [`open`] is called.
fn closed_gate() -> Receiver {
    let gate = Receiver::start("127.0.0.1:0".parse().expect("addr"));
    gate.on_rcpt("*", &["451 4.3.2 gate closed, try later"]);
    gate
}

fn open(gate: &Receiver) {
    gate.on_rcpt("*", &["250 2.1.5 ok"]);
}

/// (sender, recipients, content) of each message the gate took.
fn kept(gate: &Receiver) -> Vec<(String, Vec<String>, String)> {
    gate.seen()
        .delivered()
        .into_iter()
        .map(|t| (t.mail_from.clone(), t.rcpt_to.clone(), t.content()))
        .collect()
}

fn wait_kept(gate: &Receiver, n: usize) -> Vec<(String, Vec<String>, String)> {
    gate.wait_delivered(n);
    kept(gate)
}

/// A relay for localhost that sends everything (bounces included) to `gate`
/// and retries only when told to.
fn relay_to(gate: &Receiver) -> Relay {
    relay_with_queue(gate, "retry_intervals = [\"1h\"]")
}

/// The same with `queue` as the `[queue]` section's keys.
fn relay_with_queue(gate: &Receiver, queue: &str) -> Relay {
    Relay::start_with(&format!(
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [tls]\ncert = \"relay.crt\"\nkey = \"relay.key\"\ngenerate_if_missing = true\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [[outbound]]\nname = \"gate\"\nrecipient_domains = [\"*\"]\nsmarthosts = [\"{}\"]\ntls = \"none\"\n\
         [queue]\n{queue}\n\
         [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n",
        gate.addr
    ))
}

fn send(relay: &Relay, subject: &str) {
    send_to(relay, subject, "bob@far.test");
}

fn send_to(relay: &Relay, subject: &str, recipient: &str) {
    let (mut client, _) = Client::connect(relay.smtp);
    client.command("EHLO client.test");
    let content =
        format!("From: alice@sender.test\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n");
    assert_queued(&client.deliver("alice@sender.test", &[recipient], &content));
    client.command("QUIT");
}

/// `tlsrelay queue ARGS -c CONFIG`: (exit code, stdout, stderr).
fn queue(relay: &Relay, args: &[&str]) -> (i32, String, String) {
    let config = relay.dir().join("tlsrelay.toml");
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-c", arg(&config)]);
    let out = tlsrelay(&all);
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

/// The ids in `queue list --json`, each with its subject and first recipient's state.
fn listed(relay: &Relay) -> Vec<(String, String, String)> {
    let (code, out, err) = queue(relay, &["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let entries: serde_json::Value = serde_json::from_str(&out).expect("list json");
    entries
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            let id = e["id"].as_str().unwrap_or_default().to_string();
            let state = e["recipients"][0]["state"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let (_, show, _) = queue(relay, &["show", &id]);
            let subject = show
                .lines()
                .find_map(|l| l.trim().strip_prefix("Subject: "))
                .unwrap_or_default()
                .to_string();
            (id, subject, state)
        })
        .collect()
}

/// Waits (bounded) until `n` messages are listed and all are deferred.
fn wait_deferred(relay: &Relay, n: usize) -> Vec<(String, String, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = listed(relay);
        if listed.len() == n && listed.iter().all(|(_, _, state)| state == "deferred") {
            return listed;
        }
        assert!(
            Instant::now() < deadline,
            "listed {listed:?}\n{}",
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn id_of(listed: &[(String, String, String)], subject: &str) -> String {
    listed
        .iter()
        .find(|(_, s, _)| s == subject)
        .map(|(id, _, _)| id.clone())
        .unwrap_or_else(|| panic!("{subject} not listed in {listed:?}"))
}

#[test]
fn queue_commands_work_against_a_running_relay() {
    let gate = closed_gate();
    let relay = relay_to(&gate);
    for subject in ["one", "two", "three"] {
        send(&relay, subject);
    }
    let listed = wait_deferred(&relay, 3);
    let (one, two, three) = (
        id_of(&listed, "one"),
        id_of(&listed, "two"),
        id_of(&listed, "three"),
    );

    // The listing: every message, its sender, the recipient's state and the last reason.
    let (code, text, _) = queue(&relay, &["list"]);
    assert_eq!(code, 0);
    for id in [&one, &two, &three] {
        assert!(text.contains(id.as_str()), "{text}");
    }
    assert!(text.contains("<alice@sender.test>"), "{text}");
    assert!(text.contains("deferred   bob@far.test"), "{text}");
    assert!(
        text.contains("(4.3.2 127.0.0.1 said: 451 gate closed, try later)"),
        "{text}"
    );
    assert!(text.contains("-- 3 message(s)"), "{text}");
    assert!(text.contains("3 recipient(s) pending"), "{text}");

    let (code, text, _) = queue(&relay, &["show", &one]);
    assert_eq!(code, 0);
    assert!(text.contains(&format!("id:        {one}")), "{text}");
    assert!(text.contains("sender:    <alice@sender.test>"), "{text}");
    assert!(
        text.contains("from client.test [127.0.0.1], connector lan, plaintext"),
        "{text}"
    );
    assert!(text.contains("attempts:  1, next in "), "{text}");
    assert!(text.contains("gate closed"), "{text}");
    assert!(text.contains("  Subject: one"), "{text}");

    // retry: delivered now, the others stay.
    open(&gate);
    let (code, text, err) = queue(&relay, &["retry", &one]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains(&format!("{one}: due now")), "{text}");
    let received = wait_kept(&gate, 1);
    assert!(received[0].2.contains("Subject: one"), "{received:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while self::listed(&relay).len() != 2 {
        assert!(Instant::now() < deadline, "{}", relay.log());
        std::thread::sleep(Duration::from_millis(50));
    }

    // delete: gone, never delivered.
    let (code, text, err) = queue(&relay, &["delete", &two]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(text.trim(), format!("{two}: deleted"));
    let left: Vec<String> = self::listed(&relay)
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(left, vec![three.clone()]);
    // The log says what became of its recipient, under its queue id.
    let deleted = relay.wait_for_log("\"deleted\"", 1);
    assert!(
        deleted[0].contains(&format!("\"queue_id\":\"{two}\""))
            && deleted[0].contains("\"by\":\"administrator\""),
        "{deleted:?}"
    );

    // bounce: the sender gets a DSN from <>, the message leaves the queue.
    let (code, text, err) = queue(&relay, &["bounce", &three]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains(&format!("{three}: returned to the sender")),
        "{text}"
    );
    let failed = relay.wait_for_log("\"by\":\"administrator\"", 2);
    assert!(
        failed
            .iter()
            .any(|l| l.contains(&format!("\"queue_id\":\"{three}\""))
                && l.contains("\"message\":\"failed\"")
                && l.contains("bob@far.test")),
        "{failed:?}"
    );
    let received = wait_kept(&gate, 2);
    let (from, to, dsn) = &received[1];
    assert_eq!(from, "");
    assert_eq!(to, &vec!["alice@sender.test".to_string()]);
    assert!(dsn.contains("report-type=delivery-status"), "{dsn}");
    assert!(
        dsn.contains("Final-Recipient: rfc822; bob@far.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Action: failed"), "{dsn}");
    assert!(dsn.contains("Status: 5.3.2"), "{dsn}");
    assert!(
        dsn.contains("returned to the sender by the administrator of relay.example.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Subject: three"), "{dsn}");

    // retry --all with nothing left; and nothing else ever arrived.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !self::listed(&relay).is_empty() {
        assert!(Instant::now() < deadline, "{}", relay.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, text, _) = queue(&relay, &["retry", "--all"]);
    assert_eq!((code, text.trim()), (0, "0 message(s) due now"));
    let (code, text, _) = queue(&relay, &["list"]);
    assert_eq!((code, text.as_str()), (0, "The queue is empty.\n"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(kept(&gate).len(), 2, "{:?}", kept(&gate));
}

#[test]
fn unknown_or_malformed_ids_are_user_errors() {
    let gate = closed_gate();
    let relay = relay_to(&gate);
    for args in [
        &["show", "0123456789ABCDEF00"][..],
        &["retry", "0123456789ABCDEF00"],
        &["delete", "0123456789ABCDEF00"],
        &["bounce", "../../tlsrelay.toml"],
        &["delete", "queue/../lock"],
    ] {
        let (code, out, err) = queue(&relay, args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(
            err.contains("no such message in the queue"),
            "{args:?}: {err}"
        );
    }
    assert!(relay.dir().join("tlsrelay.toml").exists());
    assert!(relay.dir().join("spool/lock").exists());
}

#[test]
fn with_no_relay_running_commands_act_on_the_spool_and_the_relay_picks_up() {
    let gate = closed_gate();
    let mut relay = relay_to(&gate);
    send(&relay, "four");
    send(&relay, "five");
    let listed = wait_deferred(&relay, 2);
    let (four, five) = (id_of(&listed, "four"), id_of(&listed, "five"));
    assert!(relay.terminate().success());

    // Offline: the spool's lock is free, the files are changed directly.
    let (code, text, err) = queue(&relay, &["delete", &five]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(text.trim(), format!("{five}: deleted"));
    let (code, text, err) = queue(&relay, &["bounce", &four]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("returned to the sender"), "{text}");
    // The notice waits in the spool for the relay.
    let queued = self::listed(&relay);
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].2, "queued");

    // A second relay on a spool in use is refused.
    relay.launch();
    let config = relay.dir().join("tlsrelay.toml");
    let second = tlsrelay(&["serve", "-c", arg(&config)]);
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("is in use by another tlsrelay process"),
        "{}",
        stderr(&second)
    );

    open(&gate);
    let (code, text, _) = queue(&relay, &["retry", "--all"]);
    assert_eq!(code, 0);
    assert!(text.contains("due now"), "{text}");
    let received = wait_kept(&gate, 1);
    let (from, _, dsn) = &received[0];
    assert_eq!(from, "");
    assert!(dsn.contains("Subject: four"), "{dsn}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(kept(&gate).len(), 1, "five was deleted: {:?}", kept(&gate));
}

/// A configuration whose spool does not exist (a wrong `-c`, or a relay
/// that never ran): every queue command says so and exits 1, and none of
/// them creates the spool.
#[test]
fn a_missing_spool_is_a_user_error_and_is_not_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("tlsrelay.toml");
    std::fs::write(
        &config,
        "[server]\nhostname = \"relay.example.test\"\nspool_dir = \"spool\"\n",
    )
    .expect("write config");
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["show", "0123456789ABCDEF00"],
        &["retry", "--all"],
        &["retry", "0123456789ABCDEF00"],
        &["delete", "0123456789ABCDEF00"],
        &["bounce", "0123456789ABCDEF00"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
            .arg("queue")
            .args(args)
            .arg("-c")
            .arg(&config)
            .output()
            .expect("run tlsrelay");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("spool: no spool here (no queue/ folder): check server.spool_dir"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            !dir.path().join("spool").exists(),
            "{args:?} created the spool"
        );
    }
}
