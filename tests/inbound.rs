//! The inbound side over real sockets, against the real binary: a plain
//! session, a real SMTP client (lettre) over STARTTLS, the implicit-TLS
//! listener, and the graceful stop.

mod support;

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport};
use support::relay::{recipients, Relay};
use support::smtp::{assert_queued, Client};
use support::split_received;
use support::tls::client_config;

#[test]
fn plain_session_spools_the_message_with_its_envelope() {
    let relay = Relay::start("");
    let (mut c, greeting) = Client::connect(relay.smtp);
    assert_eq!(greeting, "220 relay.example.test ESMTP tlsrelay\r\n");
    assert!(c.command("EHLO client.test").contains("250 STARTTLS"));
    assert_eq!(
        c.command("MAIL FROM:<alice@sender.test>"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(c.command("RCPT TO:<bob@example.test>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    let reply = c.command("Subject: hi\r\n\r\nbody\r\n.");
    assert_queued(&reply);
    assert_eq!(c.command("QUIT"), "221 2.0.0 Bye\r\n");
    let spooled = relay.expect_spooled(1);
    let (id, envelope, content) = &spooled[0];
    assert!(reply.contains(id.as_str()));
    assert_eq!(envelope.sender, "alice@sender.test");
    assert_eq!(envelope.recipients[0].address, "bob@example.test");
    let content = String::from_utf8_lossy(content);
    assert!(content.starts_with("Received: from client.test (unknown [127.0.0.1])\r\n\tby relay.example.test (tlsrelay) with ESMTP id "), "{content}");
    assert!(
        content.ends_with("\r\nSubject: hi\r\n\r\nbody\r\n"),
        "{content}"
    );
}

#[test]
fn lettre_delivers_over_starttls_trusting_the_relay_certificate() {
    let relay = Relay::start("");
    let pem = std::fs::read(relay.cert_path()).expect("relay certificate");
    let tls = TlsParameters::builder("relay.example.test".into())
        .add_root_certificate(Certificate::from_pem(&pem).expect("relay PEM"))
        .build_rustls()
        .expect("lettre TLS parameters");
    let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(relay.smtp.port())
        .tls(Tls::Required(tls))
        .hello_name(ClientId::Domain("lettre.client.test".into()))
        .timeout(Some(Duration::from_secs(20)))
        .build();
    let message = Message::builder()
        .from("Alice <alice@sender.test>".parse().expect("from"))
        .to("Bob <bob@example.test>".parse().expect("to"))
        .cc("Carol <carol@example.test>".parse().expect("cc"))
        .subject("over STARTTLS")
        .header(ContentType::TEXT_PLAIN)
        .body("Hello Bob,\r\n.a line that starts with a dot\r\n.\r\nbye\r\n".to_string())
        .expect("message");
    let response = mailer.send(&message).expect("lettre send");
    assert_eq!(response.code().to_string(), "250");
    let text = response.message().collect::<Vec<_>>().join(" ");
    assert!(text.starts_with("2.0.0 Ok: queued as "), "{text}");

    let spooled = relay.expect_spooled(1);
    let (id, envelope, content) = &spooled[0];
    assert!(text.ends_with(id.as_str()), "{text} vs {id}");
    assert_eq!(envelope.sender, "alice@sender.test");
    let mut recipients = recipients(envelope);
    recipients.sort();
    assert_eq!(recipients, ["bob@example.test", "carol@example.test"]);
    let (received, body) = split_received(content);
    // Byte for byte what lettre put on the wire: its formatted message,
    // then the CRLF it always writes before ".\r\n" (so the content ends
    // in an empty line); dot-stuffing undone, nothing else added.
    let mut sent = message.formatted();
    sent.extend_from_slice(b"\r\n");
    assert_eq!(
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(&sent)
    );
    assert!(
        received.starts_with("Received: from lettre.client.test (unknown [127.0.0.1])\r\n"),
        "{received}"
    );
    // Our cipher order is the server's, strongest first (ignore_client_order).
    assert!(
        received.contains("\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 key-exchange "),
        "{received}"
    );
    assert!(
        received.contains("\t(no client certificate)\r\n"),
        "{received}"
    );
    assert!(received.contains(" with ESMTPS id "), "{received}");
}

#[test]
fn implicit_tls_listener_greets_after_the_handshake_and_takes_mail() {
    let relay = Relay::start_server("listen_implicit_tls = [\"127.0.0.1:0\"]", "");
    let addr = relay
        .implicit_tls
        .expect("implicit-TLS listener in the log");
    let (mut c, greeting) = Client::connect_tls(addr, client_config(None));
    assert_eq!(greeting, "220 relay.example.test ESMTP tlsrelay\r\n");
    let version = format!("{:?}", c.tls().protocol_version().expect("version"));
    assert_eq!(version, "TLSv1_3");
    // The suite the client negotiated, by its IANA name (rustls spells
    // its TLS 1.3 suites `TLS13_…`; the header must not).
    let cipher = format!(
        "{:?}",
        c.tls().negotiated_cipher_suite().expect("cipher").suite()
    )
    .replacen("TLS13_", "TLS_", 1);
    let ehlo = c.ehlo();
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(c.command("STARTTLS"), "503 5.5.1 TLS already active\r\n");
    let reply = c.deliver(
        "alice@sender.test",
        &["bob@example.test"],
        "Subject: tls\r\n\r\nsecret\r\n",
    );
    assert_queued(&reply);
    assert_eq!(c.command("QUIT"), "221 2.0.0 Bye\r\n");

    let spooled = relay.expect_spooled(1);
    let (received, body) = split_received(&spooled[0].2);
    assert_eq!(body, b"Subject: tls\r\n\r\nsecret\r\n");
    assert!(
        received.contains(&format!(
            "\t(using TLSv1.3 with cipher {cipher} key-exchange "
        )),
        "{received}"
    );
    assert!(received.contains(" with ESMTPS id "), "{received}");
}

#[test]
fn sigterm_closes_idle_sessions_lets_data_finish_and_exits_zero() {
    let mut relay = Relay::start("");
    let (mut idle, _) = Client::connect(relay.smtp);
    idle.ehlo();
    let (mut busy, _) = Client::connect(relay.smtp);
    busy.ehlo();
    assert_eq!(
        busy.command("MAIL FROM:<alice@sender.test>"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(
        busy.command("RCPT TO:<bob@example.test>"),
        "250 2.1.5 Ok\r\n"
    );
    assert_eq!(
        busy.command("DATA"),
        "354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n");

    relay.sigterm();
    assert_eq!(
        idle.reply(),
        "421 4.3.2 relay.example.test Service shutting down, closing transmission channel\r\n"
    );
    assert!(idle.closed());

    busy.send(b"second half\r\n");
    let reply = busy.command(".");
    assert_queued(&reply);
    assert_eq!(
        busy.command("MAIL FROM:<alice@sender.test>"),
        "421 4.3.2 relay.example.test Service shutting down, closing transmission channel\r\n"
    );
    assert!(busy.closed());

    let status = relay.wait_exit();
    assert!(status.success(), "{status}:\n{}", relay.log());
    let spooled = relay.spooled();
    assert_eq!(spooled.len(), 1, "{}", relay.log());
    let (_, body) = split_received(&spooled[0].2);
    assert_eq!(
        body,
        b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n"
    );
}

/// `BDAT 0 LAST` as the first and only chunk (RFC 3030 §2 allows an empty
/// last chunk) completes the message at once. Found by the session fuzz
/// target: the session asked for the commit from `message_opened`, the
/// connection driver dropped that action, and the client waited for a
/// reply until the command timeout.
#[test]
fn bdat_zero_last_as_the_only_chunk_is_queued() {
    let relay = Relay::start_server("command_timeout = \"5s\"", "");
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    assert_eq!(
        c.command("MAIL FROM:<alice@sender.test>"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(c.command("RCPT TO:<bob@example.test>"), "250 2.1.5 Ok\r\n");
    let reply = c.command("BDAT 0 LAST");
    assert_queued(&reply);
    assert_eq!(c.command("NOOP"), "250 2.0.0 Ok\r\n");
    let spooled = relay.expect_spooled(1);
    let content = String::from_utf8_lossy(&spooled[0].2);
    assert!(
        content.starts_with("Received: from client.test"),
        "{content}"
    );
}
