//! The notice of a message flagged REQUIRETLS (RFC 8689 §5): flagged in
//! turn, the original's headers alone whatever `RET`, and dropped, never
//! bounced, when it cannot go either.

use super::support::dsn::{parse, python_view};
use super::support::{arg, stdout, tlsrelay};
use super::{message, world_with, SENDER};
use tlsrelay::queue::envelope::{Envelope, Recipient, Ret};

/// Routes for a message flagged REQUIRETLS: b.test to the next hop with
/// the flag ignored (`requiretls = "off"`), so the next hop's answer is
/// the recipient's fate; sender.test to a smarthost nobody answers on, so
/// the notice waits in the queue, where the test reads it.
const FLAGGED_ROUTES: &str = "[[outbound]]\nname = \"flag-off\"\nrecipient_domains = [\"b.test\"]\n\
     smarthosts = [\"mx1.b.test:{PORT}\"]\nrequiretls = \"off\"\n\
     [[outbound]]\nname = \"held\"\nrecipient_domains = [\"sender.test\"]\nsmarthosts = [\"127.0.0.1:1\"]\n";

#[test]
fn a_flagged_message_returns_a_flagged_notice_with_its_headers_alone() {
    let mut world = world_with("", FLAGGED_ROUTES);
    world.next_hop.on_rcpt("*", &["550 5.1.1 no such user"]);
    // The message comes in as a run before left it: flagged, RET=FULL.
    assert!(world.relay.terminate().success());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let flagged = Envelope {
        sender: SENDER.into(),
        recipients: vec![Recipient {
            address: "bob@b.test".into(),
            orcpt: None,
            notify: None,
        }],
        ret: Some(Ret::Full),
        requiretls: true,
        received_at: now,
        ..Envelope::default()
    };
    world
        .relay
        .put_spooled("00000000000000F1A6", &flagged, &message("flagged"));
    world.relay.launch();

    let queued = world
        .relay
        .wait_for_log("delivery status notification queued", 1)
        .remove(0);
    assert!(queued.contains("00000000000000F1A6"), "{queued}");
    assert!(queued.contains("\"requiretls\":true"), "{queued}");
    let spooled = world.relay.wait_for_spooled(1);
    let (id, notice, content) = spooled
        .iter()
        .find(|(_, envelope, _)| envelope.sender.is_empty())
        .unwrap_or_else(|| panic!("no notice in the spool: {spooled:?}"));
    assert!(notice.requiretls, "the notice is flagged too: {notice:?}");
    assert_eq!(notice.recipients[0].address, SENDER);
    let dsn = parse(content);
    assert_eq!(
        dsn.part_types,
        [
            "text/plain; charset=utf-8",
            "message/delivery-status",
            "text/rfc822-headers"
        ],
        "headers alone, though RET=FULL"
    );
    assert_eq!(dsn.recipient("bob@b.test").field("Status"), "5.1.1");
    assert!(
        dsn.text.contains("required TLS (REQUIRETLS"),
        "{}",
        dsn.text
    );
    let view = python_view(content);
    assert_eq!(view["parts"][2]["type"], "text/rfc822-headers", "{view}");
    let text = String::from_utf8_lossy(content);
    assert!(text.contains("Subject: flagged\r\n"), "{text}");
    assert!(!text.contains("Hello."), "not a byte of the body: {text}");

    // The notice fails in turn: it is dropped, never bounced.
    let config = world.relay.dir().join("tlsrelay.toml");
    let out = tlsrelay(&["queue", "bounce", id, "-c", arg(&config)]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("no notice"), "{}", stdout(&out));
    world.relay.wait_spool_empty();
    let log = world.relay.log();
    assert!(log.contains("the sender is <>"), "{log}");
    assert_eq!(
        world
            .relay
            .wait_for_log("delivery status notification queued", 1)
            .len(),
        1,
        "{log}"
    );
    assert_eq!(world.sender_mx.seen().connections, 0);
}
