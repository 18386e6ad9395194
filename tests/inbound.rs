//! The inbound side over real sockets, against the real binary.

mod support;

use support::relay::Relay;
use support::smtp::Client;

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
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    assert_eq!(c.command("QUIT"), "221 2.0.0 Bye\r\n");
    let spooled = relay.wait_for_spooled(1);
    assert_eq!(spooled.len(), 1, "{}", relay.log());
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
