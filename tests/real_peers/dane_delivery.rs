//! DANE in delivery against a real signed tree: the relay (its own
//! process) asks nsd serving zones ldns signed for this run
//! (`support::signed_dns`), validates in process, and delivers to a TLS
//! receiver with a self-signed certificate that records what it took.
//! A few cells only, one relay and one receiver on 127.0.0.1: the full
//! matrix (several MX hosts, stripping proxy, time-outs) is issue 15's
//! acceptance suite, built apart from this.

use std::net::{SocketAddr, TcpListener};

use tlsrelay::queue::state::RecipientState;
use tlsrelay::tls::dane::Tlsa;

use super::support::ca::{self_signed, Key, Spec};
use super::support::relay::Relay;
use super::support::signed_dns::{Kind, SignedDns};
use super::support::smtp::submit;
use super::support::tls_receiver::{tlsa_3_1_1, AfterTls, TlsReceiver};

/// `@ MX 10 mx`, `mx A 127.0.0.1`, and `_PORT._tcp.mx TLSA` when given.
fn mail_zone(port: u16, tlsa: Option<&Tlsa>) -> String {
    let mut records = "@ MX 10 mx\nmx A 127.0.0.1\n".to_string();
    if let Some(tlsa) = tlsa {
        records.push_str(&format!("_{port}._tcp.mx TLSA {tlsa}\n"));
    }
    records
}

fn relay_config(port: u16, tree: &SignedDns) -> String {
    format!(
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [queue]\nretry_intervals = [\"1h\"]\n\
         [delivery]\nmx_port = {port}\nconnect_timeout = \"5s\"\n\
         [dns]\nreverse_lookups = false\nnameservers = [\"{}\"]\ntimeout = \"2s\"\n\
         dnssec = true\ntrust_anchor = \"{}\"\n",
        tree.addr,
        tree.anchor.display()
    )
}

const SENDER: &str = "alice@relay.example.test";

fn message(domain: &str) -> String {
    format!(
        "From: {SENDER}\r\nTo: bob@{domain}\r\nSubject: DANE to {domain}\r\n\r\nfor {domain}\r\n"
    )
}

/// Sends one message to bob@`domain`.
fn send(relay: &Relay, domain: &str) {
    let to = format!("bob@{domain}");
    submit(relay.smtp, SENDER, &[to.as_str()], &message(domain));
}

/// Waits for an attempt line with `"dane":"WORD"` for bob@`domain`.
fn logged(relay: &Relay, word: &str, domain: &str) -> Vec<String> {
    let lines = relay.wait_for_log(&format!("\"dane\":\"{word}\""), 1);
    let lines: Vec<String> = lines
        .into_iter()
        .filter(|l| l.contains(&format!("bob@{domain}")))
        .collect();
    assert!(
        !lines.is_empty(),
        "no dane={word} line for {domain}\n{}",
        relay.log()
    );
    lines
}

/// Waits (bounded) until the receiver took the message for `domain`
/// over TLS (never in plaintext).
fn wait_taken(receiver: &TlsReceiver, domain: &str) {
    let text = format!("for {domain}");
    receiver.wait_until(&text, |_| receiver.taken(&text) == 1);
}

/// `tlsrelay probe DOMAIN -c CONFIG`'s report.
fn probe(config: &std::path::Path, domain: &str) -> String {
    let output = super::support::tlsrelay(&["probe", domain, "-c", super::support::arg(config)]);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The saved state of the one spooled message to `domain`, once tried.
fn deferred(relay: &Relay, domain: &str) -> RecipientState {
    let rcpt = format!("bob@{domain}");
    let id = relay
        .wait_for_spooled(1)
        .into_iter()
        .chain(relay.spooled())
        .find(|(_, envelope, _)| envelope.recipients.iter().any(|r| r.address == rcpt))
        .map(|(id, _, _)| id)
        .unwrap_or_else(|| panic!("no spooled message to {rcpt}\n{}", relay.log()));
    let mut state = relay.wait_for_state(&id, "an attempt", |s| s.attempts >= 1);
    state.recipients.remove(0)
}

fn assert_refused_by_dane(relay: &Relay, domain: &str, word: &str) {
    let state = deferred(relay, domain);
    let code = state.code.map(|c| c.to_string()).unwrap_or_default();
    let reason = state.reason.clone().unwrap_or_default();
    assert!(code.starts_with("4.7."), "{domain}: {state:?}");
    assert!(reason.contains("DANE"), "{domain}: {state:?}");
    logged(relay, word, domain);
}

#[test]
#[ignore = "real peers: nsd and ldnsutils; run by .ci/run"]
fn secure_tlsa_authenticates_a_wrong_key_or_bogus_answer_defers_insecure_stays_opportunistic() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    // Self-signed, for a name that is not the MX: DANE-EE checks neither.
    let receiver = TlsReceiver::on(listener, "not-the-mx.example", &versions, AfterTls::Serve);
    let right = tlsa_3_1_1(&receiver.cert);
    let wrong = tlsa_3_1_1(&self_signed(&Spec::new(&["mx.example"], Key::P256)).der);
    let tree = SignedDns::builder()
        .zone("secure.test", Kind::Secure, &mail_zone(port, Some(&right)))
        .zone("wrong.test", Kind::Secure, &mail_zone(port, Some(&wrong)))
        .zone(
            "broken.test",
            Kind::BrokenTlsa,
            &mail_zone(port, Some(&right)),
        )
        .zone("plain.test", Kind::Insecure, &mail_zone(port, None))
        .start();
    let relay = Relay::start_with(&relay_config(port, &tree));
    relay.wait_for_log(
        "DNSSEC validation works through the configured name servers",
        1,
    );
    let server: SocketAddr = receiver.addr;

    // secure + 3 1 1 right key: delivered over TLS, SNI the MX host.
    send(&relay, "secure.test");
    wait_taken(&receiver, "secure.test");
    let sessions = receiver.sessions();
    assert!(
        sessions
            .iter()
            .any(|s| s.sni.as_deref() == Some("mx.secure.test")),
        "{sessions:#?}"
    );
    let lines = logged(&relay, "verified", "secure.test");
    assert!(lines[0].contains("\"usage\":\"3\""), "{lines:#?}");

    // probe, from the command line, tells the same from the same ladder.
    let config = relay.dir().join("tlsrelay.toml");
    let report = probe(&config, "secure.test");
    for line in [
        "DNSSEC             MX secure, addresses secure",
        &format!("TLSA record        {right}"),
        &format!("TLSA check         {right}: matches the presented certificate"),
        "would deliver with TLSv1.3, DANE verified (TLSA usage 3)",
    ] {
        assert!(report.contains(line), "{line}\n{report}");
    }
    let report = probe(&config, "wrong.test");
    for line in [
        &format!("TLSA check         {wrong}: does not match the presented certificate"),
        "would wait in the queue",
        "DANE: TLS is mandatory",
    ] {
        assert!(report.contains(line), "{line}\n{report}");
    }

    // secure + wrong key: deferred 4.7.x naming DANE, nothing at the receiver.
    send(&relay, "wrong.test");
    assert_refused_by_dane(&relay, "wrong.test", "failed");
    assert_eq!(receiver.taken("for wrong.test"), 0);

    // TLSA bogus (altered after signing): host unusable, no connection at all.
    let before = receiver.sessions().len();
    send(&relay, "broken.test");
    assert_refused_by_dane(&relay, "broken.test", "host-unusable");
    assert_eq!(receiver.sessions().len(), before, "{server}");

    // Insecure zone: opportunistic as today (TLS, the certificate untrusted).
    send(&relay, "plain.test");
    wait_taken(&receiver, "plain.test");
    logged(&relay, "insecure", "plain.test");
}
