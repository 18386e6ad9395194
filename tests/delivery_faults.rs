//! Delivery against receivers that misbehave, scripted in the test:
//!
//! * one whose TLS is broken (offers STARTTLS, says 220, hangs up): the
//!   opportunistic ladder still delivers, in plaintext on the last rung,
//!   yet the broken-TLS memory gives an attacker who breaks a handshake
//!   no plaintext start later (issue 12 item 2): later messages start at
//!   the top rung until 3 failures over 30 minutes, a remembered rung is
//!   tried first once an hour, a success forgets it;
//! * one that takes the content and never answers: the sender is killed
//!   mid-delivery and delivers again after its restart (at least once).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use support::faulty::{wait_for, AfterStartTls, FaultyReceiver, Seen};
use support::relay::Relay;
use support::smtp::{assert_queued, Client};

fn sender(to: SocketAddr) -> Relay {
    Relay::start_with(&format!(
        "[server]\nhostname = \"out.sender.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [[outbound]]\nname = \"broken\"\nrecipient_domains = [\"broken.test\"]\nsmarthosts = [\"{to}\"]\n\
         [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n"
    ))
}

fn send(relay: &Relay, subject: &str) {
    let (mut client, _) = Client::connect(relay.smtp);
    client.command("EHLO client.test");
    assert_queued(&client.deliver(
        "a@sender.test",
        &["b@broken.test"],
        &format!("Subject: {subject}\r\n\r\nhi\r\n"),
    ));
}

/// How many times the receiver saw STARTTLS.
fn starttls(seen: &[String]) -> usize {
    seen.iter().filter(|s| *s == "starttls").count()
}

/// The table rows of `tls-memory list` in state `state`.
fn rows(listed: &str, state: &str) -> usize {
    listed
        .lines()
        .filter(|l| !l.starts_with("--") && l.contains(&format!(" {state} ")))
        .count()
}

/// `tlsrelay tls-memory ARGS -c` the relay's config: its output.
fn tls_memory(relay: &Relay, args: &[&str]) -> String {
    let config = relay.dir().join("tlsrelay.toml");
    let mut all = vec!["tls-memory"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-c", support::arg(&config)]);
    let output = support::tlsrelay(&all);
    assert!(
        output.status.success(),
        "tls-memory {args:?}: {}",
        support::stderr(&output)
    );
    support::stdout(&output)
}

/// Issue 12 item 2, with an attacker in the path: a handshake breaker
/// fails one attempt (the ladder still ends in plaintext for that
/// message, as DESIGN.md §5 says), then an honest TLS receiver is back
/// on the same address: the next message goes over TLS, and the success
/// leaves nothing in the memory.
#[test]
fn one_broken_handshake_buys_the_attacker_no_later_plaintext() {
    let receiver = FaultyReceiver::start(AfterStartTls::HangUp);
    let relay = sender(receiver.addr);
    send(&relay, "first");
    let after_first = receiver.wait_for("first");
    // Rung 1 (TLS 1.3+1.2) and rung 2 (TLS 1.2) both fail, rung 3 delivers.
    assert_eq!(starttls(&after_first), 2, "{after_first:?}");
    // The attempt's line is logged after the receiver's 250: wait for it.
    relay.wait_for_log("plaintext (TLS failed on higher rungs)", 1);
    let counting = tls_memory(&relay, &["list"]);
    assert_eq!(rows(&counting, "counting"), 2, "{counting}");

    receiver.heal();
    send(&relay, "second");
    let seen = receiver.wait_for("second");
    assert!(
        seen.iter()
            .any(|s| s.starts_with("tls:") && s.contains("Subject: second")),
        "the second message did not arrive over TLS: {seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|s| s.starts_with("plain:") && s.contains("Subject: second")),
        "the second message arrived in plaintext: {seen:?}"
    );
    assert_eq!(starttls(&seen), 3, "{seen:?}");
    let after = tls_memory(&relay, &["list"]);
    assert!(
        after.contains("is empty"),
        "the success forgot nothing:\n{after}"
    );
}

/// One or two failures (or three within seconds) never make a plaintext
/// start: every message starts at the top rung, also after a restart.
#[test]
fn failures_close_together_never_start_a_message_in_plaintext() {
    let receiver = FaultyReceiver::start(AfterStartTls::HangUp);
    let mut relay = sender(receiver.addr);
    for (n, subject) in ["one", "two", "three"].iter().enumerate() {
        send(&relay, subject);
        let seen = receiver.wait_for(&format!("Subject: {subject}"));
        assert_eq!(
            starttls(&seen),
            2 * (n + 1),
            "message {subject} did not start at the top rung: {seen:?}"
        );
        relay.wait_for_log("plaintext (TLS failed on higher rungs)", n + 1);
    }
    relay.terminate();
    relay.launch();
    send(&relay, "four");
    let seen = receiver.wait_for("Subject: four");
    assert_eq!(starttls(&seen), 8, "after the restart: {seen:?}");
    assert!(
        !relay.log().contains("skipped-rung"),
        "the memory decided on failures seconds apart"
    );
}

/// A relay with two opportunistic connectors, `skip.test` and
/// `retry.test`, to the two receivers.
fn two_routes(skip: SocketAddr, retry: SocketAddr) -> Relay {
    Relay::start_with(&format!(
        "[server]\nhostname = \"out.sender.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [[outbound]]\nname = \"skip\"\nrecipient_domains = [\"skip.test\"]\nsmarthosts = [\"{skip}\"]\n\
         [[outbound]]\nname = \"retry\"\nrecipient_domains = [\"retry.test\"]\nsmarthosts = [\"{retry}\"]\n\
         [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n"
    ))
}

/// A memory entry: `rung` of `server` failed 3 times over the last two
/// hours, the last time (and last tried) `tried` minutes ago.
fn entry(server: SocketAddr, rung: &str, tried: i64, now: i64) -> String {
    format!(
        r#"{{"server":"{server}","host":"{ip}","rung":"{rung}","failures":3,"first_failure":{first},"last_failure":{last},"last_tried":{tried},"until":{until}}}"#,
        ip = server.ip(),
        first = now - 120 * 60,
        last = now - tried * 60,
        tried = now - tried * 60,
        until = now + 20 * 3600,
    )
}

/// After 3 failures spread over 30 minutes (a memory file seeded so),
/// the broken rungs are skipped, the log line says so, and yet a rung
/// last tried over an hour ago is tried first again; its success (an
/// honest server now) forgets it. `forget` clears the rest.
#[test]
fn a_confirmed_broken_rung_is_skipped_but_tried_first_once_an_hour() {
    let skip = FaultyReceiver::start(AfterStartTls::HangUp);
    let retry = FaultyReceiver::start(AfterStartTls::HangUp);
    retry.heal();
    let mut relay = two_routes(skip.addr, retry.addr);
    relay.terminate();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let entries = [
        entry(skip.addr, "Modern", 10, now),
        entry(skip.addr, "Tls12", 10, now),
        entry(retry.addr, "Modern", 61, now),
    ];
    let file = relay.dir().join("spool/tls-memory.json");
    std::fs::write(
        &file,
        format!(r#"{{"version":2,"entries":[{}]}}"#, entries.join(",")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    relay.launch();
    let listed = tls_memory(&relay, &["list"]);
    assert_eq!(rows(&listed, "broken"), 2, "{listed}");
    assert_eq!(rows(&listed, "retry due"), 1, "{listed}");

    for to in ["b@skip.test", "b@retry.test"] {
        let (mut client, _) = Client::connect(relay.smtp);
        client.command("EHLO client.test");
        assert_queued(&client.deliver(
            "a@sender.test",
            &[to],
            &format!("Subject: to {to}\r\n\r\nhi\r\n"),
        ));
    }
    let skipped = skip.wait_for("Subject: to b@skip.test");
    assert_eq!(
        starttls(&skipped),
        0,
        "both TLS rungs remembered broken: {skipped:?}"
    );
    relay.wait_for_log("skipped-rung-modern,skipped-rung-tls12", 1);
    relay.wait_for_log("plaintext (the broken-TLS memory skipped the TLS rungs)", 1);

    let retried = retry.wait_for("Subject: to b@retry.test");
    assert!(
        retried
            .iter()
            .any(|s| s.starts_with("tls:") && s.contains("to b@retry.test")),
        "the hourly retry of the top rung did not deliver over TLS: {retried:?}"
    );
    relay.wait_for_log("retried-rung-modern", 1);
    let listed = tls_memory(&relay, &["list"]);
    assert!(
        !listed.contains(&retry.addr.to_string()) && listed.contains(&skip.addr.to_string()),
        "the success forgot the retried entry only:\n{listed}"
    );
    let forgot = tls_memory(&relay, &["forget", &skip.addr.ip().to_string()]);
    assert!(forgot.contains("2 entries forgotten"), "{forgot}");
    assert!(tls_memory(&relay, &["list"]).contains("is empty"));
    // With the relay stopped, the command edits the file.
    relay.terminate();
    let output = support::tlsrelay(&[
        "tls-memory",
        "forget",
        "--all",
        "-c",
        support::arg(&relay.dir().join("tlsrelay.toml")),
    ]);
    assert!(output.status.success(), "{}", support::stderr(&output));
    assert!(support::stdout(&output).contains("0 entries forgotten"));
}

/// A receiver that takes the content but never answers the first time
/// (so the sender can be killed mid-delivery), and says 250 afterwards.
fn stalling_receiver() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().flatten().enumerate() {
            let log = log.clone();
            std::thread::spawn(move || stall_then_accept(stream, &log, n == 0));
        }
    });
    (addr, seen)
}

fn stall_then_accept(mut stream: TcpStream, seen: &Seen, stall: bool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().unwrap_or_else(|e| panic!("{e}")));
    let _ = stream.write_all(b"220 stall.test ESMTP\r\n");
    let mut line = String::new();
    let mut in_data = false;
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                let kind = if stall { "stalled" } else { "accepted" };
                seen.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(kind.into());
                if stall {
                    std::thread::sleep(Duration::from_secs(30));
                    return;
                }
                let _ = stream.write_all(b"250 2.0.0 ok\r\n");
            }
        } else {
            let reply: &[u8] = match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                "EHLO" => b"250-stall.test\r\n250 PIPELINING\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go\r\n"
                }
                "QUIT" => return,
                _ => b"250 ok\r\n",
            };
            let _ = stream.write_all(reply);
        }
        line.clear();
    }
}

#[test]
fn a_delivery_cut_short_by_sigkill_is_made_again_after_restart() {
    let (addr, seen) = stalling_receiver();
    let mut relay = Relay::start_with(&format!(
        "[server]\nhostname = \"out.sender.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [[outbound]]\nname = \"stall\"\nrecipient_domains = [\"stall.test\"]\nsmarthosts = [\"{addr}\"]\ntls = \"none\"\n\
         [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n"
    ));
    let (mut client, _) = Client::connect(relay.smtp);
    client.command("EHLO client.test");
    assert_queued(&client.deliver(
        "a@sender.test",
        &["b@stall.test"],
        "Subject: once\r\n\r\nhi\r\n",
    ));
    wait_for(&seen, "stalled");
    relay.kill(); // mid-delivery: the content is out, the 250 never came
    relay.launch();
    let after = wait_for(&seen, "accepted");
    assert_eq!(
        after,
        ["stalled", "accepted"],
        "delivered at least once after the crash"
    );
    relay.wait_spool_empty();
}
