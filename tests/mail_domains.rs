//! Issue 12, items 3 and 12, over real sockets: every spelling of a
//! domain is one domain (IDNA 2008 / UTS #46 A-labels), so no Unicode
//! spelling escapes a sender restriction; address literals
//! (`user@[192.0.2.1]`, RFC 5321 §4.1.3) are addresses, local only when
//! configured, relayed straight to their IP otherwise. What the relay
//! spooled and what the next hop received is the proof.

mod support;

use support::dns::DnsServer;
use support::receiver::Receiver;
use support::relay::{base_config_accepting, mx_config, recipients, with_keys, Relay};
use support::smtp::{assert_queued, submit, Client};

const OK_MAIL: &str = "250 2.1.0 Ok\r\n";
const OK_RCPT: &str = "250 2.1.5 Ok\r\n";
const NOT_PERMITTED: &str = "550 5.7.1 Sender domain not permitted through this connection\r\n";
const DENIED: &str = "550 5.7.1 Relaying denied\r\n";

/// Restricted sender domains written as A-labels, as U-labels and as
/// plain ASCII, owned by a connector that loopback clients never match:
/// every client here is anonymous.
const RESTRICTED: &str = "[[inbound]]\nname = \"partner\"\nremote_ips = [\"10.0.0.0/8\"]\n\
    sender_domains = [\"xn--bcher-kva.test\", \"partner.test\", \"münchen.test\"]\nrestrict_sender_domains = true\n";

/// Sends `lines` in order on a fresh anonymous session and collects
/// every `(line, reply, expected)` that differs.
fn check(relay: &Relay, cases: &[(&str, &str)]) -> Vec<String> {
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    let mut wrong = Vec::new();
    for (line, expected) in cases {
        let reply = c.command(line);
        if reply != *expected {
            wrong.push(format!("{line}: {reply:?}, not {expected:?}"));
        }
        if reply.starts_with("250 2.1.0") {
            c.command("RSET");
        }
    }
    wrong
}

#[test]
fn no_spelling_of_a_restricted_sender_domain_passes_for_an_anonymous_client() {
    let relay = Relay::start_server("max_errors = 100", RESTRICTED);
    let wrong = check(
        &relay,
        &[
            // The two reports: a U-label for an A-label in the
            // config, full-width letters for an ASCII domain.
            ("MAIL FROM:<a@bücher.test> SMTPUTF8", NOT_PERMITTED),
            ("MAIL FROM:<a@ｐａｒｔｎｅｒ.test> SMTPUTF8", NOT_PERMITTED),
            // Case, a decomposed ü, a trailing dot, an ideographic stop,
            // full-width dots, a soft hyphen (mapped away).
            ("MAIL FROM:<a@BÜCHER.TEST> SMTPUTF8", NOT_PERMITTED),
            ("MAIL FROM:<a@bu\u{308}cher.test> SMTPUTF8", NOT_PERMITTED),
            ("MAIL FROM:<a@bücher.test.> SMTPUTF8", NOT_PERMITTED),
            ("MAIL FROM:<a@partner。test> SMTPUTF8", NOT_PERMITTED),
            (
                "MAIL FROM:<a@ｐａｒｔｎｅｒ．ｔｅｓｔ> SMTPUTF8",
                NOT_PERMITTED,
            ),
            ("MAIL FROM:<a@part\u{ad}ner.test> SMTPUTF8", NOT_PERMITTED),
            ("MAIL FROM:<a@XN--BCHER-KVA.test>", NOT_PERMITTED),
            ("MAIL FROM:<a@Partner.Test.>", NOT_PERMITTED),
            // A U-label in the config restricts its A-label on the wire.
            ("MAIL FROM:<a@xn--mnchen-3ya.test>", NOT_PERMITTED),
            ("MAIL FROM:<a@MÜNCHEN.test> SMTPUTF8", NOT_PERMITTED),
            // Other domains, and the null sender, still pass.
            ("MAIL FROM:<a@bucher.test>", OK_MAIL),
            ("MAIL FROM:<a@other.bücher.test> SMTPUTF8", OK_MAIL),
            ("MAIL FROM:<>", OK_MAIL),
            // No A-label form: refused before any decision (553, see
            // `domain_refusal` in src/inbound/commands.rs).
            (
                "MAIL FROM:<a@xn--a.test>",
                "553 5.1.7 The sender domain has no IDNA 2008 A-label form (UTS #46)\r\n",
            ),
            (
                "MAIL FROM:<a@b\u{fffd}cher.test> SMTPUTF8",
                "553 5.1.7 The sender domain has no IDNA 2008 A-label form (UTS #46)\r\n",
            ),
            // Mapped to something that is no domain: a syntax error.
            (
                "MAIL FROM:<a@ex＠mple.test> SMTPUTF8",
                "501 5.1.7 Bad sender address syntax\r\n",
            ),
        ],
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(relay.spool_files(), Vec::<String>::new());
}

#[test]
fn address_literals_are_addresses_and_bad_ones_say_why() {
    let relay = Relay::start_server("max_errors = 100", "");
    let bad_literal =
        |status: &str, why: &str| format!("501 {status} Bad address literal: {why}\r\n");
    let v4 = "not an IPv4 address; write [192.0.2.1] or [IPv6:2001:db8::1]";
    let v6 = "not an IPv6 address after \"IPv6:\"";
    let general = "general address literals ([tag:content]) are not supported; write [192.0.2.1] or [IPv6:2001:db8::1]";
    let cases: Vec<(String, String)> = vec![
        ("MAIL FROM:<a@[192.0.2.1]>".into(), OK_MAIL.into()),
        ("MAIL FROM:<a@[IPv6:2001:db8::1]> SIZE=100".into(), OK_MAIL.into()),
        ("MAIL FROM:<\"a b\"@[ipv6:::1]>".into(), OK_MAIL.into()),
        ("MAIL FROM:<a@[192.0.2.256]>".into(), bad_literal("5.1.7", v4)),
        ("MAIL FROM:<a@[1.2.3]>".into(), bad_literal("5.1.7", v4)),
        ("MAIL FROM:<a@[IPv6:2001:db8::g]>".into(), bad_literal("5.1.7", v6)),
        ("MAIL FROM:<a@[x-tag:abc]>".into(), bad_literal("5.1.7", general)),
        ("MAIL FROM:<a@[2001:db8::1]>".into(), bad_literal("5.1.7", general)),
        ("MAIL FROM:<a@[192.0.2.1]x>".into(), "501 5.1.7 Bad sender address syntax\r\n".into()),
        // A dotted quad is not a domain: the reply says how to write it.
        (
            "MAIL FROM:<x@1.2.3.4>".into(),
            "501 5.1.7 Bad sender address syntax: an IP address is written as an address literal, [1.2.3.4]\r\n".into(),
        ),
    ];
    let cases: Vec<(&str, &str)> = cases
        .iter()
        .map(|(l, r)| (l.as_str(), r.as_str()))
        .collect();
    let wrong = check(&relay, &cases);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // RCPT: syntax first, then relay control. No literal is local here.
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    assert_eq!(c.command("MAIL FROM:<a@[192.0.2.1]>"), OK_MAIL);
    for (rcpt, expected) in [
        ("postmaster@[127.0.0.1]", DENIED.to_string()),
        ("bob@[192.0.2.1]", DENIED.into()),
        ("bob@[IPv6:2001:db8::1]", DENIED.into()),
        ("bob@[IPv6:::ffff:127.0.0.1]", DENIED.into()),
        ("bob@[300.0.0.1]", bad_literal("5.1.3", v4)),
        ("bob@[IPv6:::1::2]", bad_literal("5.1.3", v6)),
        ("bob@[tag:content]", bad_literal("5.1.3", general)),
        (
            "x@1.2.3.4",
            "501 5.1.3 Bad recipient address syntax: an IP address is written as an address literal, [1.2.3.4]\r\n".into(),
        ),
        ("bob@example.test", OK_RCPT.into()),
    ] {
        assert_eq!(c.command(&format!("RCPT TO:<{rcpt}>")), expected, "{rcpt}");
    }
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send(b"Subject: from a literal\r\n\r\nhi\r\n");
    assert_queued(&c.command("."));
    let spooled = relay.expect_spooled(1);
    let (_, envelope, _) = &spooled[0];
    assert_eq!(envelope.sender, "a@[192.0.2.1]");
    assert_eq!(recipients(envelope), ["bob@example.test"]);
}

/// An address literal listed in `accepted_domains` is local, like an
/// accepted domain: anyone may send to it (and check-config wants it
/// routed inside, like any accepted domain).
#[test]
fn a_configured_address_literal_is_local_for_anyone() {
    let base = base_config_accepting("\"[127.0.0.1]\", \"[IPv6:::1]\"");
    let relay = Relay::start_with(&with_keys(&base, "server", "max_errors = 100"));
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    assert_eq!(c.command("MAIL FROM:<alice@sender.test>"), OK_MAIL);
    for (rcpt, expected) in [
        ("postmaster@[127.0.0.1]", OK_RCPT),
        ("bob@[IPv6:::1]", OK_RCPT),
        // The same address in another spelling: the same mailbox, taken
        // once (250, not a second recipient).
        ("POSTMASTER@[IPv6:::ffff:127.0.0.1]", OK_RCPT),
        ("bob@[127.0.0.2]", DENIED),
        ("bob@[IPv6:::2]", DENIED),
    ] {
        assert_eq!(c.command(&format!("RCPT TO:<{rcpt}>")), expected, "{rcpt}");
    }
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send(b"Subject: to a literal\r\n\r\nhi\r\n");
    assert_queued(&c.command("."));
    let spooled = relay.expect_spooled(1);
    assert_eq!(
        recipients(&spooled[0].1),
        ["postmaster@[127.0.0.1]", "bob@[IPv6:::1]"]
    );
}

#[test]
fn a_relaying_connector_may_send_to_any_address_literal() {
    let relay = Relay::start(
        "[[inbound]]\nname = \"loopback\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n",
    );
    submit(
        relay.smtp,
        "alice@sender.test",
        &["bob@[192.0.2.1]", "carol@[IPv6:2001:db8::1]"],
        "Subject: relayed\r\n\r\nhi\r\n",
    );
    let spooled = relay.expect_spooled(1);
    assert_eq!(
        recipients(&spooled[0].1),
        ["bob@[192.0.2.1]", "carol@[IPv6:2001:db8::1]"]
    );
}

/// Relayed mail to `user@[127.0.0.1]` goes straight to 127.0.0.1 on
/// `mx_port`: no MX lookup (the name server here knows nothing).
#[test]
fn relayed_mail_to_an_address_literal_reaches_that_address_on_the_mx_port() {
    let dns = DnsServer::start("");
    let receiver = Receiver::start("127.0.0.1:0".parse().expect("addr"));
    let relay = Relay::start_with(&mx_config(receiver.addr.port(), dns.addr));
    submit(
        relay.smtp,
        "alice@sender.test",
        &["user@[127.0.0.1]"],
        "Subject: to a literal\r\n\r\nhi\r\n",
    );
    let delivered = receiver.wait_delivered(1);
    assert_eq!(delivered[0].mail_from, "alice@sender.test");
    assert_eq!(delivered[0].rcpt_to, ["user@[127.0.0.1]"]);
    assert!(delivered[0].content().contains("Subject: to a literal\r\n"));
    relay.wait_spool_empty();
}

/// Internationalised recipients are routed by their A-label form: one MX
/// lookup for `xn--bcher-kva.test` carries both spellings in one
/// transaction, and a third spelling of the same mailbox is one recipient.
/// The envelope keeps what the client wrote (SMTPUTF8 passes it on).
#[test]
fn u_label_recipients_are_routed_by_their_a_label_domain() {
    let zone =
        "xn--bcher-kva.test. MX 10 mx.xn--bcher-kva.test.\nmx.xn--bcher-kva.test. A 127.0.0.2\n";
    let dns = DnsServer::start(zone);
    let hosts = Receiver::on_one_port(&["127.0.0.2"]);
    let relay = Relay::start_with(&mx_config(hosts[0].addr.port(), dns.addr));
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    assert_eq!(c.command("MAIL FROM:<alice@sender.test> SMTPUTF8"), OK_MAIL);
    for rcpt in [
        "bob@bücher.test",
        "carol@XN--BCHER-KVA.test",
        "bob@BÜCHER.test.",
    ] {
        assert_eq!(c.command(&format!("RCPT TO:<{rcpt}>")), OK_RCPT, "{rcpt}");
    }
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send("Subject: Bücher\r\n\r\nhi\r\n".as_bytes());
    assert_queued(&c.command("."));
    let delivered = hosts[0].wait_delivered(1);
    assert_eq!(
        delivered[0].rcpt_to,
        ["bob@bücher.test", "carol@XN--BCHER-KVA.test"]
    );
    relay.wait_spool_empty();
}
