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
/// policy (also before an address literal), the rest does not parse.
const TRICKS: [(&str, &str); 5] = [
    ("user%ext@example.test", DENIED),
    ("ext!user@example.test", DENIED),
    ("\"user@ext.test\"@example.test", DENIED),
    ("user@ext.test@example.test", BAD_SYNTAX),
    ("\"user@ext.test\"@[127.0.0.1]", DENIED),
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
    // Every refusal counts toward max_errors: room for all of this table.
    let relay = Relay::start_server("max_errors = 100", "");
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

const BARE_IP: &str = "501 5.1.3 Bad recipient address syntax: an IP address is written as an address literal, [127.0.0.1]\r\n";
const PATH_SYNTAX: &str = "501 5.5.4 Syntax: RCPT TO:<forward-path> [parameters]\r\n";
const NEEDS_SMTPUTF8: &str = "553 5.6.7 Non-ASCII recipient address needs SMTPUTF8\r\n";

/// The classic open-relay probes (percent hack, bang paths, source
/// routes, quoted `@`, double `@`, address literals, trailing junk, case
/// and Unicode variants), as the text after `RCPT TO:`, with the reply
/// without and with SMTPUTF8. Our accepted domain is example.test, the
/// relay calls itself relay.example.test and listens on 127.0.0.1;
/// ext.test is anybody else.
const VECTORS: &[(&str, &str, &str)] = &[
    // Percent hack.
    ("<user%ext.test@example.test>", DENIED, DENIED),
    ("<user%ext.test@relay.example.test>", DENIED, DENIED),
    ("<user%ext.test@[127.0.0.1]>", DENIED, DENIED),
    ("<user%ext.test>", BAD_SYNTAX, BAD_SYNTAX),
    ("<\"user%ext.test\"@example.test>", DENIED, DENIED),
    ("<USER%EXT.TEST@EXAMPLE.TEST>", DENIED, DENIED),
    // Bang paths.
    ("<ext.test!user>", BAD_SYNTAX, BAD_SYNTAX),
    ("<ext.test!user@example.test>", DENIED, DENIED),
    ("<relay.example.test!ext.test!user>", BAD_SYNTAX, BAD_SYNTAX),
    // Source routes (the route is ignored: this is user@ext.test).
    ("<@example.test:user@ext.test>", DENIED, DENIED),
    (
        "<@example.test,@relay.example.test:user@ext.test>",
        DENIED,
        DENIED,
    ),
    ("<@[127.0.0.1]:user@ext.test>", BAD_SYNTAX, BAD_SYNTAX),
    // An `@` in a quoted or escaped local part.
    ("<\"user@ext.test\">", BAD_SYNTAX, BAD_SYNTAX),
    ("<\"user@ext.test\"@example.test>", DENIED, DENIED),
    ("<\"user@ext.test\"@[127.0.0.1]>", DENIED, DENIED),
    ("<\"user\\@ext.test\"@example.test>", DENIED, DENIED),
    (
        "<\"user@ext.test\"@example.test> NOTIFY=NEVER",
        DENIED,
        DENIED,
    ),
    ("<user@ext.test@example.test>", BAD_SYNTAX, BAD_SYNTAX),
    ("<user@ext.test\\@example.test>", BAD_SYNTAX, BAD_SYNTAX),
    // Address literals, ours and others' (RFC 5321 §4.1.3): valid
    // syntax, and not local unless configured as an accepted domain.
    ("<user@[127.0.0.1]>", DENIED, DENIED),
    ("<user@[192.0.2.1]>", DENIED, DENIED),
    ("<user@[IPv6:::1]>", DENIED, DENIED),
    ("<user@[IPv6:::ffff:127.0.0.1]>", DENIED, DENIED),
    ("<user@127.0.0.1>", BARE_IP, BARE_IP),
    // Plainly elsewhere, however it is spelt.
    ("<user@ext.test>", DENIED, DENIED),
    (" <user@ext.test>", DENIED, DENIED),
    ("<USER@EXT.TEST>", DENIED, DENIED),
    ("<postmaster@ext.test>", DENIED, DENIED),
    ("<user@ext.test.>", DENIED, DENIED),
    ("<user@example.test.ext.test>", DENIED, DENIED),
    // Not a domain at all: refused before any routing question.
    ("<user@ext.test%example.test>", BAD_SYNTAX, BAD_SYNTAX),
    ("<user@relay.example.test>", DENIED, DENIED),
    ("<user@localhost>", DENIED, DENIED),
    // Trailing junk and broken brackets.
    (
        "<user@ext.test> junk",
        "555 5.5.4 Unsupported parameter JUNK\r\n",
        "555 5.5.4 Unsupported parameter JUNK\r\n",
    ),
    ("<user@ext.test>@example.test", PATH_SYNTAX, PATH_SYNTAX),
    ("user@ext.test", PATH_SYNTAX, PATH_SYNTAX),
    ("<user@ext.test", PATH_SYNTAX, PATH_SYNTAX),
    ("<<user@ext.test>>", BAD_SYNTAX, BAD_SYNTAX),
    (
        "<user@ext.test>,<bob@example.test>",
        PATH_SYNTAX,
        PATH_SYNTAX,
    ),
    (
        "<bob@example.test> <user@ext.test>",
        PATH_SYNTAX,
        PATH_SYNTAX,
    ),
    (
        "<user@ext.test>\0",
        "500 5.5.2 NUL character in command\r\n",
        "500 5.5.2 NUL character in command\r\n",
    ),
    // Unicode: another domain, a homoglyph of ours (Cyrillic а), and
    // compatibility forms of `@`, `%` and `!` that NFKC turns into tricks.
    ("<user@ext.tést>", NEEDS_SMTPUTF8, DENIED),
    ("<user@exаmple.test>", NEEDS_SMTPUTF8, DENIED),
    // Other spellings of ext.test (full-width, ideographic full stop):
    // the same domain, so the same answer.
    ("<user@ｅｘｔ.test>", NEEDS_SMTPUTF8, DENIED),
    ("<user@ext。test>", NEEDS_SMTPUTF8, DENIED),
    ("<user＠ext.test@example.test>", NEEDS_SMTPUTF8, DENIED),
    ("<user﹫ext.test@example.test>", NEEDS_SMTPUTF8, DENIED),
    ("<user％ext.test@example.test>", NEEDS_SMTPUTF8, DENIED),
    ("<ext.test！user@example.test>", NEEDS_SMTPUTF8, DENIED),
];

#[test]
fn every_classic_open_relay_vector_is_refused_to_an_anonymous_client() {
    let relay = Relay::start_server("max_errors = 10000", "");
    let mut wrong = Vec::new();
    for smtputf8 in [false, true] {
        let (mut c, _) = Client::connect(relay.smtp);
        c.ehlo();
        let parameter = if smtputf8 { " SMTPUTF8" } else { "" };
        for sender in SENDERS.iter().chain(&["postmaster@example.test"]) {
            let mail = format!("MAIL FROM:<{sender}>{parameter}");
            assert_eq!(c.command(&mail), "250 2.1.0 Ok\r\n");
            for (vector, ascii, utf8) in VECTORS {
                let expected = if smtputf8 { utf8 } else { ascii };
                let reply = c.command(&format!("RCPT TO:{vector}"));
                if &reply != expected {
                    wrong.push(format!(
                        "{mail} then RCPT TO:{vector}: {reply:?}, not {expected:?}"
                    ));
                }
            }
            // Not one recipient was taken.
            assert_eq!(c.command("DATA"), "554 5.5.1 No valid recipients\r\n");
            assert_eq!(c.command("RSET"), "250 2.0.0 Ok\r\n");
        }
        assert_eq!(c.command("QUIT"), "221 2.0.0 Bye\r\n");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(relay.spool_files(), Vec::<String>::new(), "{}", relay.log());
}

#[test]
fn relay_refusals_count_toward_max_errors() {
    let relay = Relay::start_server("max_errors = 3", "");
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    assert_eq!(c.command("MAIL FROM:<alice@ext.test>"), "250 2.1.0 Ok\r\n");
    assert_eq!(c.command("RCPT TO:<a@ext.test>"), DENIED);
    assert_eq!(c.command("RCPT TO:<b%ext.test@example.test>"), DENIED);
    assert_eq!(
        c.command("RCPT TO:<c@ext.test>"),
        "421 4.7.0 relay.example.test Too many errors; closing\r\n"
    );
    assert!(c.closed());
}
