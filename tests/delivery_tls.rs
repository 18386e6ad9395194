//! What the relay says in its TLS handshakes with next hops: the server
//! name it sends (SNI: the MX host's name, or the smarthost's), and the
//! floor `min_tls_version` sets. The receivers record what reached them.

mod support;

use std::net::TcpListener;

use support::dns::DnsServer;
use support::relay::{mx_config, Relay};
use support::smtp::submit;
use support::tls_receiver::{AfterTls, TlsReceiver};

const SENDER: &str = "alice@sender.test";
const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn message(subject: &str) -> String {
    format!("From: {SENDER}\r\nSubject: {subject}\r\n\r\nHello.\r\n")
}

#[test]
fn mx_and_smarthost_names_are_sent_as_sni() {
    let dns = DnsServer::start(
        "b.test. MX 10 mx1.b.test.\nmx1.b.test. A 127.0.0.2\nsmart.c.test. A 127.0.0.3\n",
    );
    let mx = TlsReceiver::start(
        "127.0.0.2:0".parse().expect("addr"),
        "mx1.b.test",
        BOTH,
        AfterTls::Serve,
    );
    let smart = TlsReceiver::start(
        "127.0.0.3:0".parse().expect("addr"),
        "smart.c.test",
        BOTH,
        AfterTls::Serve,
    );
    let connector = format!(
        "[[outbound]]\nname = \"smart\"\nrecipient_domains = [\"c.test\"]\nsmarthosts = [\"smart.c.test:{}\"]\n",
        smart.addr.port()
    );
    let config = format!("{}{connector}", mx_config(mx.addr.port(), dns.addr));
    let relay = Relay::start_with(&config);
    submit(relay.smtp, SENDER, &["bob@b.test"], &message("by MX"));
    submit(
        relay.smtp,
        SENDER,
        &["carol@c.test"],
        &message("by smarthost"),
    );
    for (receiver, name) in [(&mx, "mx1.b.test"), (&smart, "smart.c.test")] {
        let sessions = receiver.wait_until("a message over TLS", |s| {
            s.iter().any(|s| !s.messages.is_empty())
        });
        let session = sessions
            .iter()
            .find(|s| !s.messages.is_empty())
            .expect("a session with mail");
        assert_eq!(session.sni.as_deref(), Some(name), "{sessions:#?}");
        assert_eq!(session.version.as_deref(), Some("TLSv1_3"));
        assert!(sessions.iter().all(|s| !s.plaintext_mail), "{sessions:#?}");
    }
    relay.wait_spool_empty();
}

#[test]
fn min_tls_version_13_defers_for_a_tls12_only_receiver_and_delivers_to_tls13() {
    let old = TlsReceiver::on(
        TcpListener::bind("127.0.0.2:0").expect("bind"),
        "old.test",
        &[&rustls::version::TLS12],
        AfterTls::Serve,
    );
    let new = TlsReceiver::on(
        TcpListener::bind("127.0.0.3:0").expect("bind"),
        "new.test",
        BOTH,
        AfterTls::Serve,
    );
    let connector = |name: &str, receiver: &TlsReceiver| {
        format!(
            "[[outbound]]\nname = \"{name}\"\nrecipient_domains = [\"{name}.test\"]\n\
             smarthosts = [\"{}\"]\ntls = \"required\"\nmin_tls_version = \"1.3\"\n",
            receiver.addr
        )
    };
    let dns = DnsServer::start("");
    let config = format!(
        "{}{}{}",
        mx_config(25, dns.addr),
        connector("old", &old),
        connector("new", &new)
    );
    let relay = Relay::start_with(&config);
    submit(relay.smtp, SENDER, &["a@old.test"], &message("to old"));
    submit(relay.smtp, SENDER, &["b@new.test"], &message("to new"));

    let sessions = new.wait_until("the message", |s| s.iter().any(|s| !s.messages.is_empty()));
    assert!(sessions
        .iter()
        .filter(|s| !s.messages.is_empty())
        .all(|s| s.version.as_deref() == Some("TLSv1_3")));

    let queued = relay.wait_for_spooled(1);
    let id = queued
        .iter()
        .find(|(_, envelope, _)| envelope.recipients[0].address == "a@old.test")
        .map(|(id, _, _)| id.clone())
        .expect("the message to old.test waits");
    let state = relay.wait_for_state(&id, "a deferral", |s| s.attempts >= 2);
    let slot = &state.recipients[0];
    let code = slot.code.map(|c| c.to_string()).unwrap_or_default();
    assert!(code.starts_with("4.7."), "{state:?}");
    let reason = slot.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("TLS failed") && reason.contains("protocol version"),
        "{reason}"
    );
    let seen = old.sessions();
    assert!(!seen.is_empty(), "the relay tried old.test");
    assert!(
        seen.iter()
            .all(|s| s.version.is_none() && !s.plaintext_mail && s.messages.is_empty()),
        "no TLS 1.2 session, nothing in plaintext: {seen:#?}"
    );
}
