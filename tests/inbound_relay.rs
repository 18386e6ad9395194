//! Relay control (DESIGN.md §4): accepted domains from anyone, other
//! domains only through a connector with `allow_relay`, and no relay
//! trick passing for either.

mod support;

use support::relay::{recipients, Relay};
use support::smtp::{assert_queued, Client};
use support::split_received;

const DENIED: &str = "550 5.7.1 Relaying denied\r\n";
const BAD_SYNTAX: &str = "501 5.1.3 Bad recipient address syntax\r\n";
const OK: &str = "250 2.1.5 Ok\r\n";

/// Old routing syntax that a naive relay would forward to ext.test, with
/// the reply each gets: routing hidden in the local part is refused by
/// policy, the rest does not parse.
const TRICKS: [(&str, &str); 5] = [
    ("user%ext@example.test", DENIED),
    ("ext!user@example.test", DENIED),
    ("\"user@ext.test\"@example.test", DENIED),
    ("user@ext.test@example.test", BAD_SYNTAX),
    ("\"user@ext.test\"@[127.0.0.1]", BAD_SYNTAX),
];

/// A source route: RFC 5321 §C says to ignore the route, so this is
/// plain `user@ext.test`, relayed only where ext.test would be.
const SOURCE_ROUTE: &str = "@example.test:user@ext.test";

/// Null, external and local senders.
const SENDERS: [&str; 3] = ["", "alice@sender.test", "alice@example.test"];

/// For every sender: every trick is refused, an external domain gets
/// `external` (source-routed or not), an accepted one is taken.
fn check_recipients(c: &mut Client, external: &str) {
    for sender in SENDERS {
        assert_eq!(
            c.command(&format!("MAIL FROM:<{sender}>")),
            "250 2.1.0 Ok\r\n"
        );
        for (trick, expected) in TRICKS {
            let reply = c.command(&format!("RCPT TO:<{trick}>"));
            assert_eq!(reply, expected, "<{sender}> to <{trick}>");
        }
        for external_rcpt in [SOURCE_ROUTE, "bob@ext.test"] {
            let reply = c.command(&format!("RCPT TO:<{external_rcpt}>"));
            assert_eq!(reply, external, "<{sender}> to <{external_rcpt}>");
        }
        let reply = c.command("RCPT TO:<bob@example.test>");
        assert_eq!(reply, OK, "<{sender}>");
        assert_eq!(c.command("RSET"), "250 2.0.0 Ok\r\n");
    }
}

#[test]
fn anonymous_clients_reach_accepted_domains_only_and_no_trick_relays() {
    let relay = Relay::start("");
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    check_recipients(&mut c, DENIED);
    // Accepted domains need no TLS; the refused recipients leave no trace.
    assert_eq!(c.command("MAIL FROM:<>"), "250 2.1.0 Ok\r\n");
    assert_eq!(c.command("RCPT TO:<bob@ext.test>"), DENIED);
    assert_eq!(c.command("RCPT TO:<bob@example.test>"), OK);
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send(b"Subject: plain\r\n\r\nhi\r\n");
    let reply = c.command(".");
    assert_queued(&reply);
    let spooled = relay.expect_spooled(1);
    let (_, envelope, _) = &spooled[0];
    assert_eq!(envelope.sender, "");
    assert_eq!(recipients(envelope), ["bob@example.test"]);
}

#[test]
fn a_relay_connector_by_ip_may_relay_but_tricks_still_fail() {
    let relay = Relay::start(
        "[[inbound]]\nname = \"loopback\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n",
    );
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    check_recipients(&mut c, OK);
    let reply = c.deliver(
        "alice@sender.test",
        &["bob@ext.test", SOURCE_ROUTE, "carol@example.test"],
        "Subject: relayed\r\n\r\nhi\r\n",
    );
    assert_queued(&reply);
    let spooled = relay.expect_spooled(1);
    let (_, envelope, content) = &spooled[0];
    assert_eq!(
        recipients(envelope),
        ["bob@ext.test", "user@ext.test", "carol@example.test"]
    );
    let (received, _) = split_received(content);
    assert!(
        received.contains("by relay.example.test (tlsrelay; connector loopback) with ESMTP id "),
        "{received}"
    );
}
