//! `probe` climbs delivery's TLS ladder, so its verdict is what delivery
//! then does (issue 14). In-process receivers (TLS 1.3 and 1.2 with a
//! self-signed certificate, TLS 1.2 only, no STARTTLS, STARTTLS that hangs
//! up or answers garbage), every TLS level, `opportunistic_fallback` on
//! and off: per cell, probe's typed verdict against what delivery did with
//! one message. The real-peer suite runs the same comparison against
//! Postfix (`tls_matrix::probe`).

mod support;

use rustls::version::{TLS12, TLS13};

use support::faulty::{AfterStartTls, FaultyReceiver};
use support::prediction::{differences, probe_and_deliver, Case, Fate, LEVELS};
use support::receiver::Receiver;
use support::tls_receiver::{AfterTls, TlsReceiver};

#[test]
fn probe_predicts_what_delivery_does_in_every_cell() {
    let any = "127.0.0.1:0".parse().expect("address");
    let tls13 = TlsReceiver::start(any, "mx.good.test", &[&TLS13, &TLS12], AfterTls::Serve);
    let tls12 = TlsReceiver::start(any, "mx.good.test", &[&TLS12], AfterTls::Serve);
    let plain = Receiver::start(any);
    let hangup = FaultyReceiver::start(AfterStartTls::HangUp);
    let garbage = FaultyReceiver::start(AfterStartTls::Garbage);
    let receivers = [
        ("tls13", tls13.addr),
        ("tls12", tls12.addr),
        ("plain", plain.addr),
        ("hangup", hangup.addr),
        ("garbage", garbage.addr),
    ];
    let mut fates = Vec::new();
    let mut wrong = Vec::new();
    for fallback in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = format!(
            "[server]\nhostname = \"relay.example.test\"\nspool_dir = \"spool\"\n\
             [delivery]\nconnect_timeout = \"3s\"\nopportunistic_fallback = {fallback}\n\
             [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n"
        );
        let mut cases = Vec::new();
        for (kind, addr) in receivers {
            for level in LEVELS {
                let name = format!("{level}-{kind}");
                config.push_str(&format!(
                    "[[outbound]]\nname = \"{name}\"\nrecipient_domains = [\"{name}.test\"]\n\
                     smarthosts = [\"{addr}\"]\ntls = \"{level}\"\n"
                ));
                match level {
                    "verify-domain" => config.push_str("tls_domains = [\"mx.good.test\"]\n"),
                    // Nobody's key: the pin never matches.
                    "pinned" => config.push_str(&format!(
                        "fingerprints = [\"sha256:{}\"]\n",
                        "00".repeat(32)
                    )),
                    _ => {}
                }
                cases.push(Case {
                    name: format!("{name} (fallback {fallback})"),
                    domain: format!("{name}.test"),
                    recipient: format!("bob@{name}.test"),
                    content: format!("Subject: cell {name}\r\n\r\ncell {name}\r\n"),
                });
            }
        }
        let file = dir.path().join("tlsrelay.toml");
        std::fs::write(&file, config).expect("config");
        let results = probe_and_deliver(&file, &cases);
        wrong.extend(differences(&results));
        fates.extend(results.into_iter().map(|(_, probe, _, _)| probe));
    }
    assert!(
        wrong.is_empty(),
        "{} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The matrix reaches every kind of answer the ladder gives.
    let seen = |what: &dyn Fn(&Fate) -> bool| fates.iter().any(what);
    let text = |fate: &Fate| match fate {
        Fate::Tls { version, note } => format!("tls {version} {note}"),
        Fate::Plaintext(why) => why.clone(),
        Fate::Deferred { status, reason } => format!("{status} {reason}"),
        Fate::Other(other) => other.clone(),
    };
    for needle in [
        "tls TLSv1.3 untrusted: self-signed",
        "tls TLSv1.2 untrusted: self-signed",
        "plaintext (tls = none)",
        "plaintext (STARTTLS not offered)",
        "plaintext (TLS failed on higher rungs)",
        "4.7.4 STARTTLS not offered",
        "4.7.5 TLS failed: handshake",
        "and opportunistic_fallback is off",
        "4.7.5 certificate not trusted: self-signed",
        "4.7.5 certificate matches none of the pinned fingerprints",
    ] {
        assert!(
            seen(&|f| text(f).contains(needle)),
            "no cell came to {needle:?}: {fates:#?}"
        );
    }
}
