//! STARTTLS and inbound mutual TLS over real sockets: no command survives
//! the upgrade, a verified client certificate selects its connector, an
//! unverified or unmatched one only costs the client that connector, and
//! `require_tls` holds mail back until STARTTLS.

mod support;

use support::ca::{Issued, Key, Spec, TestCa};
use support::relay::{base_config, with_keys, Relay};
use support::smtp::{assert_queued, Client};
use support::split_received;
use support::tls::client_config;

const HELP: &str = "214 2.0.0 See RFC 5321; commands: EHLO HELO STARTTLS MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT\r\n";

#[test]
fn commands_pipelined_after_starttls_are_never_answered() {
    let relay = Relay::start("");
    for injected in ["RSET", "MAIL FROM:<mallory@sender.test>"] {
        let (mut c, _) = Client::connect(relay.smtp);
        c.ehlo();
        c.send(format!("STARTTLS\r\n{injected}\r\n").as_bytes());
        assert_eq!(c.reply(), "220 2.0.0 Ready to start TLS\r\n", "{injected}");
        // A plaintext answer would sit in the buffer or break the handshake.
        let mut c = c.into_tls(client_config(None));
        let ehlo = c.ehlo();
        assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
        // The next reply is HELP's, not a late one for the injected command.
        assert_eq!(c.command("HELP"), HELP, "{injected}");
        // And the injected MAIL opened no transaction.
        assert_eq!(
            c.command("RCPT TO:<bob@example.test>"),
            "503 5.5.1 Need MAIL before RCPT\r\n",
            "{injected}"
        );
    }
}

/// A relay trusting `ca` for client certificates, with a connector for
/// mail.contoso.test that may relay.
fn mtls_relay(ca: &TestCa) -> Relay {
    let config = with_keys(&base_config(), "tls", "client_ca = [\"ca.pem\"]");
    let connector = "[[inbound]]\nname = \"contoso\"\ntls_client_cert_names = [\"mail.contoso.test\"]\nallow_relay = true\n";
    Relay::start_with_files(&format!("{config}{connector}"), &[("ca.pem", ca.pem())])
}

/// EHLO, STARTTLS with `identity`, EHLO again.
fn secure_session(relay: &Relay, identity: &Issued) -> Client<support::smtp::TlsStream> {
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    let mut c = c.starttls(client_config(Some(identity)));
    c.ehlo();
    c
}

#[test]
fn a_verified_client_certificate_selects_its_connector_and_may_relay() {
    let ca = TestCa::root("contoso test CA", Key::P256);
    let relay = mtls_relay(&ca);
    let identity = ca.leaf(&Spec::new(&["mail.contoso.test"], Key::P256));

    // Before TLS the client is anonymous.
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    assert_eq!(
        c.command("MAIL FROM:<alice@contoso.test>"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(
        c.command("RCPT TO:<bob@ext.test>"),
        "550 5.7.1 Relaying denied\r\n"
    );
    assert_eq!(c.command("RSET"), "250 2.0.0 Ok\r\n");
    let mut c = c.starttls(client_config(Some(&identity)));
    c.ehlo();
    let reply = c.deliver(
        "alice@contoso.test",
        &["bob@ext.test"],
        "Subject: partner\r\n\r\nhello\r\n",
    );
    assert_queued(&reply);

    let spooled = relay.expect_spooled(1);
    let (_, envelope, content) = &spooled[0];
    assert_eq!(envelope.recipients[0].address, "bob@ext.test");
    let (received, body) = split_received(content);
    assert_eq!(body, b"Subject: partner\r\n\r\nhello\r\n");
    assert!(
        received.contains("\t(client certificate verified: ")
            && received.contains("mail.contoso.test)\r\n"),
        "{received}"
    );
    assert!(
        received.contains("(tlsrelay; connector contoso) with ESMTPS id "),
        "{received}"
    );
}

#[test]
fn a_wrong_name_or_untrusted_ca_gets_tls_but_no_relay() {
    let ca = TestCa::root("contoso test CA", Key::P256);
    let stranger = TestCa::root("some other CA", Key::P256);
    let relay = mtls_relay(&ca);
    let cases = [
        (
            "wrong name",
            ca.leaf(&Spec::new(&["mail.fabrikam.test"], Key::P256)),
            "\t(client certificate verified: ",
        ),
        (
            "untrusted CA",
            stranger.leaf(&Spec::new(&["mail.contoso.test"], Key::P256)),
            "\t(client certificate not verified: ",
        ),
    ];
    for (n, (what, identity, cert_line)) in cases.iter().enumerate() {
        let mut c = secure_session(&relay, identity);
        assert_eq!(
            c.command("MAIL FROM:<alice@contoso.test>"),
            "250 2.1.0 Ok\r\n"
        );
        assert_eq!(
            c.command("RCPT TO:<bob@ext.test>"),
            "550 5.7.1 Relaying denied\r\n",
            "{what}"
        );
        assert_eq!(c.command("RCPT TO:<bob@example.test>"), "250 2.1.5 Ok\r\n");
        assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
        c.send(b"Subject: local\r\n\r\n");
        assert_queued(&c.command("."));
        let spooled = relay.expect_spooled(n + 1);
        let (received, _) = split_received(&spooled[n].2);
        assert!(received.contains(cert_line), "{what}: {received}");
        assert!(
            received.contains("\tby relay.example.test (tlsrelay) with ESMTPS id "),
            "{what}: {received}"
        );
    }
}

#[test]
fn require_tls_connector_answers_530_until_starttls() {
    let relay = Relay::start(
        "[[inbound]]\nname = \"partner\"\nremote_ips = [\"127.0.0.0/8\"]\nrequire_tls = true\n",
    );
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    assert_eq!(
        c.command("MAIL FROM:<alice@sender.test>"),
        "530 5.7.0 Must issue a STARTTLS command first\r\n"
    );
    let mut c = c.starttls(client_config(None));
    c.ehlo();
    let reply = c.deliver(
        "alice@sender.test",
        &["bob@example.test"],
        "Subject: secured\r\n\r\nhi\r\n",
    );
    assert_queued(&reply);
    let spooled = relay.expect_spooled(1);
    let (received, _) = split_received(&spooled[0].2);
    assert!(
        received.contains("(tlsrelay; connector partner) with ESMTPS id "),
        "{received}"
    );
}
