//! Issue 5's acceptance matrix: every outbound TLS level of DESIGN.md §5
//! against real receivers, each cell asserted on what the receiver saw.
//!
//! The receivers are private Postfix instances (TLS 1.2 and 1.3, TLS 1.2
//! only, no STARTTLS, a chain from the test CA, the test CA with the wrong
//! name, self-signed, expired, TLS 1.0/1.1 only) and scripted ones whose
//! STARTTLS breaks (hang-up, garbage, stall after `220`). One tlsrelay
//! carries one message per cell, each through its own connector (domain
//! `LEVEL-RECEIVER.test`, smarthost that receiver, `tls = LEVEL`); all are
//! sent at once and the test waits until every one is delivered or
//! deferred. Then, per cell: what Postfix's Received header says about the
//! TLS it saw (or the plaintext the scripted receiver recorded), the
//! attempt's log line, and for deferrals the 4.7.x reason in the spool
//! state and the proof that the receiver never got the message; per
//! Postfix receiver, its smtpd logged exactly as many plaintext
//! transactions as cells that ought to be plaintext.
//!
//! Beside it: `receivers` (the receivers and their certificates), `relay`
//! (the relay's configuration, sending, settling), `client_cert` (a
//! Postfix that requires our client certificate) and `probe`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tlsrelay::queue::state::Status;

// Relative to this file's folder, as in tests/real_peers.rs.
#[path = "tls_matrix/client_cert.rs"]
mod client_cert;
#[path = "tls_matrix/probe.rs"]
mod probe;
#[path = "tls_matrix/receivers.rs"]
mod receivers;
#[path = "tls_matrix/relay.rs"]
mod relay;

use receivers::{first_received, start_receivers, Certs, Kind, Receiver, ALL};
use relay::{attempt_outcomes, relay_config, send_all, start_relay, wait_until_settled, Settled};

/// The levels, in the order of DESIGN.md §5 and of [`row`]'s columns.
use crate::support::prediction::LEVELS;

/// What a cell must come to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Delivered in plaintext; the attempt log's TLS outcome.
    Plain(&'static str),
    /// Delivered in plaintext on the last rung of the ladder, after both
    /// TLS rungs failed, the log says, with this.
    Ladder(&'static str),
    /// Delivered over this TLS version; the verification note logged.
    Tls(&'static str, &'static str),
    /// Kept queued with a 4.7.x reason containing this.
    Defer(&'static str),
}

use Expect::{Defer, Ladder, Plain, Tls};

const NONE: Expect = Plain("plaintext (tls = none)");
const NOT_OFFERED: Expect = Plain("plaintext (STARTTLS not offered)");
const NO_STARTTLS: Expect = Defer("127.0.0.1: STARTTLS not offered");
const PINNED: Expect = Tls("TLSv1.3", "pinned certificate matched");

/// DESIGN.md §5 for one receiver: the expected outcome per level of
/// [`LEVELS`]. Pinned connectors pin the receiver's own key.
fn row(kind: Kind) -> [Expect; 7] {
    let v13 = |note| Tls("TLSv1.3", note);
    let verified = [
        v13("verified"),
        v13("verified"),
        v13("verified chain"),
        v13("verified"),
        v13("verified"),
    ];
    let [opp, req, ca, host, domain] = verified;
    match kind {
        Kind::Tls13 | Kind::CaChain => [NONE, opp, req, ca, host, domain, PINNED],
        Kind::Tls12 => {
            let v12 = |note| Tls("TLSv1.2", note);
            [
                NONE,
                v12("verified"),
                v12("verified"),
                v12("verified chain"),
                v12("verified"),
                v12("verified"),
                Tls("TLSv1.2", "pinned certificate matched"),
            ]
        }
        Kind::NoStartTls => [
            NONE,
            NOT_OFFERED,
            NO_STARTTLS,
            NO_STARTTLS,
            NO_STARTTLS,
            NO_STARTTLS,
            NO_STARTTLS,
        ],
        Kind::WrongName => [
            NONE,
            v13("trusted chain, name mismatch: certificate is not valid for 127.0.0.1"),
            v13("trusted chain, name mismatch: certificate is not valid for 127.0.0.1"),
            v13("verified chain"),
            Defer("certificate is not valid for 127.0.0.1 (it names: mx.wrong.test)"),
            Defer("certificate for mx.wrong.test not valid for mx.good.test"),
            PINNED,
        ],
        Kind::SelfSigned => {
            let untrusted =
                Defer("certificate not trusted: self-signed certificate (CN=mx.good.test)");
            [
                NONE,
                v13("untrusted: self-signed certificate"),
                v13("untrusted: self-signed certificate"),
                untrusted,
                untrusted,
                untrusted,
                PINNED,
            ]
        }
        Kind::Expired => {
            let expired = Defer("certificate not trusted: expired");
            [
                NONE,
                v13("untrusted: expired"),
                v13("untrusted: expired"),
                expired,
                expired,
                expired,
                PINNED,
            ]
        }
        Kind::Tls10 => {
            let refused = Defer("TLS failed: handshake: TLS alert from the peer: protocol version");
            [
                NONE,
                Ladder("handshake: TLS alert from the peer: protocol version"),
                refused,
                refused,
                refused,
                refused,
                refused,
            ]
        }
        Kind::HangUp | Kind::Garbage => {
            let (why, broken) = match kind {
                Kind::HangUp => (
                    "handshake: tls handshake eof",
                    Defer("127.0.0.1: TLS failed: handshake: tls handshake eof"),
                ),
                _ => (
                    "handshake: corrupt TLS message: invalid content type",
                    Defer("127.0.0.1: TLS failed: handshake: corrupt TLS message"),
                ),
            };
            [NONE, Ladder(why), broken, broken, broken, broken, broken]
        }
        Kind::Stall => {
            let stalled = Defer("TLS failed: handshake stalled past 4s");
            [
                NONE,
                Ladder("handshake stalled past 4s"),
                stalled,
                stalled,
                stalled,
                stalled,
                stalled,
            ]
        }
    }
}

/// One message through one connector to one receiver.
#[derive(Clone, Debug)]
struct Cell {
    level: &'static str,
    kind: Kind,
    /// `pinned` with another server's key instead of the receiver's own.
    foreign_pin: bool,
    expect: Expect,
}

impl Cell {
    fn name(&self) -> String {
        let pin = if self.foreign_pin { "-foreign-pin" } else { "" };
        format!("{}{pin}-{}", self.level, self.kind.name())
    }

    fn domain(&self) -> String {
        format!("{}.test", self.name())
    }

    fn recipient(&self) -> String {
        recipient(&self.name())
    }

    fn subject(&self) -> String {
        subject(&self.name())
    }
}

/// The recipient of the message for the connector `name` (domain `name.test`).
fn recipient(name: &str) -> String {
    format!("bob@{name}.test")
}

/// The Subject line that tells a receiver which cell a message is.
fn subject(name: &str) -> String {
    format!("Subject: cell {name}")
}

/// Every level against every one of `kinds`, plus `pinned` with a foreign
/// pin against the first TLS receiver among them.
fn cells(kinds: &[Kind]) -> Vec<Cell> {
    let mut cells: Vec<Cell> = kinds
        .iter()
        .flat_map(|&kind| {
            LEVELS
                .iter()
                .zip(row(kind))
                .map(move |(&level, expect)| Cell {
                    level,
                    kind,
                    foreign_pin: false,
                    expect,
                })
        })
        .collect();
    if kinds.contains(&Kind::CaChain) {
        cells.push(Cell {
            level: "pinned",
            kind: Kind::CaChain,
            foreign_pin: true,
            expect: Defer("certificate matches none of the pinned fingerprints"),
        });
    }
    cells
}

/// Checks one cell; returns what went wrong, if anything.
fn check_cell(
    cell: &Cell,
    receiver: &Receiver,
    state: &Settled,
    outcomes: &[String],
) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            wrong.push(what);
        }
    };
    let last = outcomes
        .last()
        .map_or("(no attempt logged)", String::as_str);
    let plaintext = matches!(cell.expect, Plain(_) | Ladder(_));
    if let Ladder(why) = cell.expect {
        for (i, rung) in ["Modern", "Tls12"].iter().enumerate() {
            let said = outcomes.get(i).map_or("", String::as_str);
            expect(
                said.starts_with(&format!("TLS failed on rung {rung} (")) && said.contains(why),
                format!(
                    "attempt {} says {said:?}, not why rung {rung} failed ({why:?})",
                    i + 1
                ),
            );
        }
    }
    match cell.expect {
        Defer(reason) => check_deferred(cell, receiver, state, last, reason, &mut expect),
        delivered => {
            let logged = match delivered {
                Plain(logged) | Tls(_, logged) => logged,
                _ => "plaintext (TLS failed on higher rungs)",
            };
            expect(
                matches!(state, Settled::Gone),
                format!("still queued: {state:?}"),
            );
            let received = receiver.received(cell);
            expect(received.is_some(), "the receiver never got it".into());
            let received = received.unwrap_or_default();
            expect(
                received.contains(&format!("the secret of cell {}", cell.name())),
                "the content did not arrive".into(),
            );
            if receiver.postfix().is_some() && plaintext {
                let header = first_received(&received);
                expect(
                    !header.contains("(using ") && header.contains(" with ESMTP id "),
                    format!("Postfix's Received header is not plaintext: {header}"),
                );
            }
            if let Tls(version, _) = cell.expect {
                let header = first_received(&received);
                expect(
                    header.contains(&format!("(using {version} with cipher "))
                        && header.contains(" with ESMTPS id "),
                    format!("Postfix's Received header does not say {version}: {header}"),
                );
                expect(
                    last.starts_with(version),
                    format!("the attempt log says {last:?}, not {version}"),
                );
            }
            expect(
                last.contains(logged),
                format!("the attempt log says {last:?}, not {logged:?}"),
            );
        }
    }
    wrong
}

/// The checks of a cell that must wait in the queue.
fn check_deferred(
    cell: &Cell,
    receiver: &Receiver,
    state: &Settled,
    last: &str,
    reason: &str,
    expect: &mut impl FnMut(bool, String),
) {
    match state {
        Settled::Queued(state) => {
            let r = &state.recipients[0];
            let code = r.code.map(|c| c.to_string()).unwrap_or_default();
            let why = r.reason.as_deref().unwrap_or("");
            expect(
                r.status == Status::Pending && code.starts_with("4.7.") && why.contains(reason),
                format!(
                    "queued as {:?} {code} {why:?}, not 4.7.x {reason:?}",
                    r.status
                ),
            );
        }
        Settled::Gone => expect(false, "left the queue".into()),
    }
    expect(
        last.starts_with("deferred: ") && last.contains(reason.trim_start_matches("127.0.0.1: ")),
        format!("the attempt log says {last:?}"),
    );
    expect(
        !receiver.saw_anything_of(cell),
        "the receiver saw the recipient or the message".into(),
    );
}

/// Per receiver, once every session has ended: exactly one plaintext
/// transaction per cell that ought to be plaintext (for Postfix, from
/// smtpd's session summaries, so a transaction no cell accounts for would
/// show too).
fn check_plaintext_sessions(cells: &[Cell], receivers: &BTreeMap<Kind, Receiver>) -> Vec<String> {
    let mut wrong = Vec::new();
    for receiver in receivers.values() {
        let expected = cells
            .iter()
            .filter(|c| c.kind == receiver.kind && matches!(c.expect, Plain(_) | Ladder(_)))
            .count();
        let (plaintext, evidence) = receiver.plaintext_transactions(Duration::from_secs(20));
        if plaintext != Some(expected) {
            wrong.push(format!(
                "{}: {plaintext:?} plaintext transactions, {expected} expected:\n{evidence}",
                receiver.kind.name(),
            ));
        }
    }
    wrong
}

#[test]
#[ignore = "real peer: run by .ci/run"]
fn every_tls_level_against_every_receiver() {
    let started = Instant::now();
    let certs = Certs::new();
    let cells = cells(&ALL);
    let receivers = start_receivers(&ALL, &cells, &certs);
    let receivers_up = started.elapsed();
    let mut relay = start_relay(&relay_config(&cells, &receivers), &certs);
    let ids = send_all(&relay, &cells.iter().map(Cell::name).collect::<Vec<_>>());
    let states = wait_until_settled(&relay, &ids, Duration::from_secs(90));
    let settled_at = started.elapsed();

    let mut failures = Vec::new();
    let mut table: BTreeMap<Kind, Vec<String>> = BTreeMap::new();
    for ((cell, id), state) in cells.iter().zip(&ids).zip(&states) {
        let outcomes = attempt_outcomes(&relay, id);
        let wrong = check_cell(cell, &receivers[&cell.kind], state, &outcomes);
        let observed = match state {
            Settled::Gone => outcomes
                .last()
                .map_or("gone", |o| o.split(' ').next().unwrap_or(""))
                .to_string(),
            Settled::Queued(s) => {
                format!(
                    "defer {}",
                    s.recipients[0]
                        .code
                        .map_or("?".to_string(), |c| c.to_string())
                )
            }
        };
        table.entry(cell.kind).or_default().push(format!(
            "{}{observed}",
            if wrong.is_empty() { "" } else { "!" }
        ));
        for what in wrong {
            failures.push(format!(
                "{} (queue id {id}): {what}; attempts: {outcomes:?}",
                cell.name()
            ));
        }
    }
    // Stop the relay, so idle connections end and every session is logged.
    relay.terminate();
    failures.extend(check_plaintext_sessions(&cells, &receivers));
    let rows: Vec<String> = table
        .iter()
        .map(|(kind, row)| format!("{:12} {}", kind.name(), row.join(" | ")))
        .collect();
    eprintln!(
        "{}\n{}\n{} receivers up after {receivers_up:?}, {} cells settled after {settled_at:?}, done after {:?}",
        LEVELS.join(" | "),
        rows.join("\n"),
        receivers.len(),
        cells.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
