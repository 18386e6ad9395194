//! Hostile next hops (issue 6, item 3): raw TCP servers scripted to
//! misbehave in one way each, against the real `tlsrelay serve`. For each
//! the test proves what the relay made of it (the reason in the queue
//! state names the phase) and that nothing was lost: once the server
//! behaves, the relay's retry delivers the message.
//!
//! * replies without end: an over-long line, `250-` forever: cut off at
//!   the reader's bound, deferred, the relay alive and its memory bounded;
//! * malformed replies: `abc`, `25`, `2500 ok`, a code change mid reply
//!   (also from `550`, which must not bounce): deferred;
//! * every reply written one byte at a time: delivered;
//! * a hang-up after the end of data without a reply (RFC 1047): kept
//!   and delivered again (a duplicate, never a loss);
//! * silence at the greeting, after EHLO, RCPT, DATA's 354 and the end of
//!   data: each phase times out (`phase_timeout_scale` makes it quick);
//! * a server that stops reading in the middle of the content (its
//!   socket buffers full): the relay's write is cut at the DATA block
//!   deadline, and the message deferred, not hung;
//! * `250` to DATA instead of `354` (also pipelined), and `354` followed
//!   at once by `250`: protocol violations, deferred, never counted as
//!   delivered;
//! * a second, unasked `250` after the end of data: the kept connection
//!   is out of step and not used again, so the next message is not
//!   answered by replies to the commands before it.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::hostile::{Conn, Hostile};
use support::relay::Relay;
use support::smtp::submit;
use tlsrelay::queue::state::{RecipientState, Status};

const SENDER: &str = "alice@sender.test";

/// A relay that routes `NAME.test` to the server of each `(NAME, addr)`
/// (plaintext, no DNS), retries every second, with `delivery` keys added
/// to its `[delivery]`.
fn relay(routes: &[(&str, SocketAddr)], delivery: &str) -> Relay {
    let mut config = format!(
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [queue]\nretry_intervals = [\"1s\"]\n\
         [delivery]\nconnect_timeout = \"2s\"\n{delivery}\n\
         [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n"
    );
    for (name, addr) in routes {
        config.push_str(&format!(
            "[[outbound]]\nname = \"{name}\"\nrecipient_domains = [\"{name}.test\"]\nsmarthosts = [\"{addr}\"]\ntls = \"none\"\n"
        ));
    }
    Relay::start_with(&config)
}

fn message(name: &str) -> String {
    format!("From: {SENDER}\r\nTo: bob@{name}.test\r\nSubject: {name}\r\n\r\nHello from the {name} case.\r\n")
}

/// One misbehaviour: its server and the queue id of the message sent to it.
struct Case {
    name: &'static str,
    server: Hostile,
    id: String,
}

type Script = Box<dyn Fn(&mut Conn) + Send + Sync>;

/// A server per script, a relay routing to them, one message each.
fn start(scripts: Vec<(&'static str, Script)>, delivery: &str) -> (Relay, Vec<Case>) {
    let servers: Vec<(&str, Hostile)> = scripts
        .into_iter()
        .map(|(name, script)| (name, Hostile::start(script)))
        .collect();
    let routes: Vec<(&str, SocketAddr)> = servers.iter().map(|(n, s)| (*n, s.addr)).collect();
    let relay = relay(&routes, delivery);
    for (name, _) in &servers {
        submit(
            relay.smtp,
            SENDER,
            &[&format!("bob@{name}.test")],
            &message(name),
        );
    }
    let spooled = relay.wait_for_spooled(servers.len());
    let cases = servers
        .into_iter()
        .map(|(name, server)| {
            let id = spooled
                .iter()
                .find(|(_, envelope, _)| {
                    envelope.recipients[0].address == format!("bob@{name}.test")
                })
                .map(|(id, _, _)| id.clone())
                .unwrap_or_else(|| {
                    panic!(
                        "{name}: gone from the spool before any retry (taken as delivered?):\n{}",
                        relay.log()
                    )
                });
            Case { name, server, id }
        })
        .collect();
    (relay, cases)
}

/// Waits for the case's first attempt to be saved and checks the message
/// is still queued with a temporary code and a reason saying `needles`.
fn deferred(relay: &Relay, case: &Case, needles: &[&str]) -> RecipientState {
    let state = relay.wait_for_state(&case.id, "a first attempt", |s| s.attempts >= 1);
    let recipient = state.recipients[0].clone();
    let reason = recipient.reason.clone().unwrap_or_default();
    assert_eq!(
        recipient.status,
        Status::Pending,
        "{}: {recipient:?}",
        case.name
    );
    assert!(
        recipient
            .code
            .is_some_and(|c| c.to_string().starts_with("4.")),
        "{}: {recipient:?}",
        case.name
    );
    for needle in needles {
        assert!(
            reason.contains(needle),
            "{}: reason {reason:?} lacks {needle:?}",
            case.name
        );
    }
    recipient
}

/// The servers behave from now on; the retries must deliver each
/// message, once, and empty the queue.
fn delivered_on_retry(relay: &Relay, cases: &[Case]) {
    for case in cases {
        case.server.behave();
    }
    for case in cases {
        let delivered = case.server.wait_delivered(1);
        assert!(
            delivered[0].contains(&format!("Subject: {}\r\n", case.name)),
            "{}: {delivered:?}",
            case.name
        );
        assert_eq!(delivered.len(), 1, "{}: delivered once", case.name);
    }
    relay.wait_spool_empty();
}

/// Resident memory of the relay process, from /proc (kB).
fn rss_kb(relay: &Relay) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", relay.pid()))
        .unwrap_or_else(|e| panic!("relay process gone: {e}\n{}", relay.log()));
    assert!(
        !status.contains("State:\tZ"),
        "relay died:\n{}",
        relay.log()
    );
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

const FLOOD_CAP: usize = 256 << 20;

#[test]
fn replies_without_end_are_cut_off_at_the_bound_and_deferred() {
    let floods = Arc::new(Mutex::new(Vec::<(&str, usize)>::new()));
    let record = |name: &'static str| {
        let floods = floods.clone();
        move |sent: usize| {
            floods
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((name, sent))
        }
    };
    let (greeting, ehlo, after_dot) = (record("greeting"), record("ehlo"), record("dot"));
    let scripts: Vec<(&'static str, Script)> = vec![
        (
            // "220 xxxx…" and never a line end.
            "longline",
            Box::new(move |c: &mut Conn| {
                let _ = c.send(b"220 ");
                greeting(c.flood(&[b'x'; 4096], FLOOD_CAP));
            }),
        ),
        (
            "endless",
            Box::new(move |c: &mut Conn| {
                let _ = c.send(b"220 hostile.test ESMTP\r\n");
                if c.expect("EHLO").is_some() {
                    ehlo(c.flood(b"250-hostile.test and more\r\n", FLOOD_CAP));
                }
            }),
        ),
        (
            "endlessdot",
            Box::new(move |c: &mut Conn| {
                if c.through_end_of_data().is_some() {
                    after_dot(c.flood(b"250-queued, and more\r\n", FLOOD_CAP));
                }
            }),
        ),
    ];
    let (relay, cases) = start(scripts, "");
    let before = rss_kb(&relay);
    deferred(
        &relay,
        &cases[0],
        &["protocol error during greeting", "longer than 1000 octets"],
    );
    deferred(&relay, &cases[1], &["protocol error during EHLO", "reply"]);
    deferred(
        &relay,
        &cases[2],
        &["protocol error during end of data", "reply"],
    );
    // The relay hung up on each flood long before the cap: it stopped
    // reading at its bound instead of buffering.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while floods.lock().unwrap_or_else(|e| e.into_inner()).len() < 3 {
        assert!(std::time::Instant::now() < deadline, "floods unfinished");
        std::thread::sleep(Duration::from_millis(10));
    }
    for (name, sent) in floods.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        assert!(*sent < 32 << 20, "{name}: the relay read {sent} bytes");
    }
    let after = rss_kb(&relay);
    assert!(
        after < before + 32 * 1024,
        "relay memory grew from {before} kB to {after} kB"
    );
    delivered_on_retry(&relay, &cases);
}

#[test]
fn malformed_reply_codes_are_protocol_errors_and_deferred() {
    let scripts: Vec<(&'static str, Script)> = vec![
        (
            "abc",
            Box::new(|c: &mut Conn| {
                let _ = c.send(b"abc hostile.test ESMTP\r\n");
                c.hold();
            }),
        ),
        (
            "short",
            Box::new(|c: &mut Conn| {
                if c.hello(b"25\r\n").is_some() {
                    c.hold();
                }
            }),
        ),
        (
            "fourdigits",
            Box::new(|c: &mut Conn| {
                if c.hello(b"250 hostile.test\r\n").is_some() && c.expect("MAIL").is_some() {
                    let _ = c.send(b"2500 ok\r\n");
                    c.hold();
                }
            }),
        ),
        (
            // Starts like a refusal: must not bounce.
            "mixedrcpt",
            Box::new(|c: &mut Conn| {
                if c.hello(b"250 hostile.test\r\n").is_some() && c.expect("MAIL").is_some() {
                    let _ = c.send(b"250 ok\r\n");
                    if c.expect("RCPT").is_some() {
                        let _ = c.send(b"550-5.1.1 no such user\r\n250 2.1.5 ok after all\r\n");
                        c.hold();
                    }
                }
            }),
        ),
        (
            // Starts like an acceptance: must not count as delivered.
            "mixeddot",
            Box::new(|c: &mut Conn| {
                if c.through_end_of_data().is_some() {
                    let _ = c.send(b"250-2.0.0 queued\r\n451 4.3.0 or not\r\n");
                    c.hold();
                }
            }),
        ),
    ];
    let (relay, cases) = start(scripts, "");
    let expected: [&[&str]; 5] = [
        &["protocol error during greeting", "malformed reply"],
        &["protocol error during EHLO", "malformed reply"],
        &["protocol error during MAIL FROM", "malformed reply"],
        &[
            "protocol error during RCPT TO",
            "different codes (550 then 250)",
        ],
        &[
            "protocol error during end of data",
            "different codes (250 then 451)",
        ],
    ];
    for (case, needles) in cases.iter().zip(expected) {
        deferred(&relay, case, needles);
    }
    delivered_on_retry(&relay, &cases);
}

#[test]
fn replies_written_one_byte_at_a_time_still_deliver() {
    let scripts: Vec<(&'static str, Script)> = vec![(
        "bytewise",
        Box::new(|c: &mut Conn| {
            c.bytewise(Duration::from_millis(1));
            c.serve_well();
        }),
    )];
    let (relay, cases) = start(scripts, "");
    let delivered = cases[0].server.wait_delivered(1);
    assert!(
        delivered[0].contains("Subject: bytewise\r\n"),
        "{delivered:?}"
    );
    relay.wait_spool_empty();
    assert_eq!(
        cases[0].server.connections(),
        1,
        "delivered at the first attempt"
    );
}

#[test]
fn a_hang_up_after_the_end_of_data_keeps_the_message_for_a_retry() {
    let scripts: Vec<(&'static str, Script)> = vec![(
        "rfc1047",
        Box::new(|c: &mut Conn| {
            // Takes the content and the dot, then goes away without a word.
            let _ = c.through_end_of_data();
        }),
    )];
    let (relay, cases) = start(scripts, "");
    let case = &cases[0];
    deferred(
        &relay,
        case,
        &["connection closed by the server during end of data"],
    );
    let shown = support::tlsrelay(&[
        "queue",
        "show",
        &case.id,
        "-c",
        support::arg(&relay.dir().join("tlsrelay.toml")),
    ]);
    assert!(
        support::stdout(&shown).contains("connection closed by the server during end of data"),
        "queue show: {}{}",
        support::stdout(&shown),
        support::stderr(&shown)
    );
    assert!(case.server.contents()[0].contains("Subject: rfc1047\r\n"));
    delivered_on_retry(&relay, &cases);
    // The hostile server got it at least once, the good one exactly once:
    // a duplicate, never a loss.
    let contents = case.server.contents();
    assert!(contents.len() >= 2, "{contents:?}");
    assert!(contents.iter().all(|c| c == &contents[0]), "{contents:?}");
}

#[test]
fn silence_in_each_phase_times_out_naming_the_phase() {
    let scripts: Vec<(&'static str, Script)> = vec![
        ("nogreeting", Box::new(|c: &mut Conn| c.hold())),
        (
            "afterehlo",
            Box::new(|c: &mut Conn| {
                if c.hello(b"250 hostile.test\r\n").is_some() {
                    c.hold();
                }
            }),
        ),
        (
            "afterrcpt",
            Box::new(|c: &mut Conn| {
                if c.until_data().is_some() {
                    c.hold();
                }
            }),
        ),
        (
            "after354",
            Box::new(|c: &mut Conn| {
                if c.until_data().is_some() && c.expect("DATA").is_some() {
                    let _ = c.send(b"354 go ahead\r\n");
                    c.hold();
                }
            }),
        ),
        (
            "afterdot",
            Box::new(|c: &mut Conn| {
                if c.through_end_of_data().is_some() {
                    c.hold();
                }
            }),
        ),
    ];
    // 0.005: 1.5 s for the greeting, MAIL and RCPT, 0.6 s for EHLO and
    // DATA, 3 s after the end of data.
    let (relay, cases) = start(scripts, "phase_timeout_scale = 0.005");
    let expected = [
        "no reply to greeting in time",
        "no reply to MAIL FROM in time",
        "no reply to DATA in time",
        "no reply to end of data in time",
        "no reply to end of data in time",
    ];
    for (case, needle) in cases.iter().zip(expected) {
        deferred(&relay, case, &[needle]);
    }
    delivered_on_retry(&relay, &cases);
}
#[test]
fn a_server_that_stops_reading_during_the_content_is_cut_and_the_message_deferred() {
    let server = Hostile::start(|c: &mut Conn| {
        if c.until_data().is_some() && c.expect("DATA").is_some() {
            let _ = c.send(b"354 go ahead\r\n");
            c.stall();
        }
    });
    // 0.005: 0.9 s for each piece of content to leave.
    let relay = relay(&[("stall", server.addr)], "phase_timeout_scale = 0.005");
    // 8 MiB: more than the socket buffers between them hold.
    let line = format!("{}\r\n", "x".repeat(998));
    let content = format!("Subject: stall\r\n\r\n{}", line.repeat(8 << 10));
    submit(relay.smtp, SENDER, &["bob@stall.test"], &content);
    let spooled = relay.wait_for_spooled(1);
    let case = Case {
        name: "stall",
        server,
        id: spooled[0].0.clone(),
    };
    let started = std::time::Instant::now();
    deferred(
        &relay,
        &case,
        &["the server stopped reading during message content"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "deferred after {:?}",
        started.elapsed()
    );
    let lines = relay.wait_for_log("stopped reading during message content", 1);
    assert!(
        lines.iter().any(|l| l.contains("\"delivery attempt\"")),
        "{lines:?}"
    );
    delivered_on_retry(&relay, std::slice::from_ref(&case));
}

#[test]
fn data_acknowledged_before_the_content_is_a_protocol_error() {
    let scripts: Vec<(&'static str, Script)> = vec![
        (
            "data250",
            Box::new(|c: &mut Conn| {
                if c.until_data().is_some() && c.expect("DATA").is_some() {
                    let _ = c.send(b"250 2.0.0 queued, or so I say\r\n");
                    c.hold();
                }
            }),
        ),
        (
            // The same, pipelined: MAIL, RCPT and DATA come in one write.
            "pipelined250",
            Box::new(|c: &mut Conn| {
                if c.hello(b"250-hostile.test\r\n250 PIPELINING\r\n").is_some()
                    && c.expect("MAIL").is_some()
                    && c.expect("RCPT").is_some()
                    && c.expect("DATA").is_some()
                {
                    let _ = c.send(b"250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n");
                    c.hold();
                }
            }),
        ),
        (
            "early250",
            Box::new(|c: &mut Conn| {
                if c.until_data().is_some() && c.expect("DATA").is_some() {
                    let _ = c.send(b"354 go ahead\r\n250 2.0.0 queued already\r\n");
                    c.hold();
                }
            }),
        ),
    ];
    let (relay, cases) = start(scripts, "");
    for case in &cases {
        deferred(&relay, case, &["protocol error during DATA"]);
    }
    delivered_on_retry(&relay, &cases);
}

#[test]
fn a_surplus_reply_keeps_no_connection_out_of_step() {
    let scripts: Vec<(&'static str, Script)> = vec![(
        "twice",
        Box::new(|c: &mut Conn| c.serve_with_surplus(b"250 2.0.0 queued, I say it twice\r\n")),
    )];
    let (relay, cases) = start(scripts, "");
    let server = &cases[0].server;
    server.wait_delivered(1);
    // Within the 5 s a connection is kept for the next message.
    submit(
        relay.smtp,
        SENDER,
        &["carol@twice.test"],
        "Subject: second\r\n\r\nThe next message.\r\n",
    );
    let delivered = server.wait_delivered(2);
    assert!(
        delivered[1].contains("Subject: second\r\n"),
        "{delivered:?}"
    );
    relay.wait_spool_empty();
    relay.wait_for_log("\"recipients\":\"carol@twice.test\"", 1);
    let attempts = relay
        .log()
        .lines()
        .filter(|l| l.contains("\"delivery attempt\"") && l.contains("carol@twice.test"))
        .count();
    assert_eq!(
        attempts,
        1,
        "the second message at its first attempt:\n{}",
        relay.log()
    );
    assert_eq!(server.connections(), 2, "a new connection for it");
}
