//! Routing by MX over real sockets and a real DNS server (hickory-server
//! in-process): the test zone names MX hosts 127.0.0.2, 127.0.0.3 … that
//! all listen on one port, the relay's `[delivery] mx_port`. What the
//! scripted receivers saw is the proof, not what the relay logged.

mod support;

use support::dns::{DnsServer, Silent};
use support::dsn::bounce_at;
use support::receiver::Receiver;
use support::relay::{mx_config, with_keys, Relay};
use support::smtp::submit;
use tlsrelay::queue::state::RecipientState;

/// `b.test` has two MX hosts (preference 10, then 20); `implicit.test`
/// has only an address; `nomail.test` publishes a null MX; the sender's
/// domain has its own MX host, where bounces go.
const ZONE: &str = "\
b.test.          MX 10 mx1.b.test.
b.test.          MX 20 mx2.b.test.
mx1.b.test.      A 127.0.0.2
mx2.b.test.      A 127.0.0.3
implicit.test.   A 127.0.0.2
nomail.test.     MX 0 .
sender.test.     MX 10 mx.sender.test.
mx.sender.test.  A 127.0.0.4
";

const SENDER: &str = "alice@sender.test";

fn message(to: &str, subject: &str) -> String {
    format!("From: {SENDER}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello.\r\n")
}

/// The DNS server, receivers on `ips` (one port), and a relay routing by MX to them.
fn world(ips: &[&str]) -> (DnsServer, Vec<Receiver>, Relay) {
    let dns = DnsServer::start(ZONE);
    let hosts = Receiver::on_one_port(ips);
    let relay = Relay::start_with(&mx_config(hosts[0].addr.port(), dns.addr));
    (dns, hosts, relay)
}

#[test]
fn mail_goes_to_the_lowest_preference_and_to_the_next_when_it_is_down() {
    let (_dns, mut hosts, relay) = world(&["127.0.0.2", "127.0.0.3"]);
    submit(
        relay.smtp,
        SENDER,
        &["bob@b.test"],
        &message("bob@b.test", "first"),
    );
    let first = hosts[0].wait_delivered(1);
    assert_eq!(first[0].mail_from, SENDER);
    assert_eq!(first[0].rcpt_to, ["bob@b.test"]);
    assert!(
        first[0].content().contains("Subject: first\r\n"),
        "{first:?}"
    );
    relay.wait_spool_empty();
    assert_eq!(
        hosts[1].seen().connections,
        0,
        "preference 20 was not asked"
    );

    hosts[0].stop();
    submit(
        relay.smtp,
        SENDER,
        &["carol@b.test"],
        &message("carol@b.test", "second"),
    );
    let second = hosts[1].wait_delivered(1);
    assert_eq!(second[0].rcpt_to, ["carol@b.test"]);
    assert!(second[0].content().contains("Subject: second\r\n"));
    relay.wait_spool_empty();
    assert_eq!(
        hosts[0].seen().delivered().len(),
        1,
        "only the first message"
    );
}

/// Submits mail for bob@b.test that cannot go out now, and waits for
/// the relay to have tried `attempts` times; bob's saved state then.
fn undeliverable_bob(relay: &Relay, attempts: u32) -> RecipientState {
    submit(
        relay.smtp,
        SENDER,
        &["bob@b.test"],
        &message("bob@b.test", "deferred"),
    );
    let id = relay.expect_spooled(1)[0].0.clone();
    let what = format!("{attempts} attempts");
    let mut state = relay.wait_for_state(&id, &what, |s| s.attempts >= attempts);
    state.recipients.remove(0)
}

#[test]
fn all_hosts_down_defers_and_retries_until_one_comes_up() {
    let (_dns, mut hosts, relay) = world(&["127.0.0.2", "127.0.0.3"]);
    hosts[0].stop();
    hosts[1].stop();
    // retry_intervals = ["1s"]: a second and a third attempt come soon.
    let recipient = undeliverable_bob(&relay, 3);
    assert_eq!(
        recipient.code.map(|c| c.to_string()).as_deref(),
        Some("4.4.1"),
        "{recipient:?}"
    );
    let reason = recipient.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("mx2.b.test") && reason.contains("connect"),
        "the last host tried and why: {reason}"
    );

    hosts[1].restart();
    let delivered = hosts[1].wait_delivered(1);
    assert_eq!(delivered[0].rcpt_to, ["bob@b.test"]);
    relay.wait_spool_empty();
    assert!(
        !relay.log().contains("delivery status notification queued"),
        "a deferral is not a bounce:\n{}",
        relay.log()
    );
}

#[test]
fn a_domain_without_mx_is_reached_at_its_own_address() {
    let (_dns, hosts, relay) = world(&["127.0.0.2"]);
    submit(
        relay.smtp,
        SENDER,
        &["dave@implicit.test"],
        &message("dave@implicit.test", "implicit"),
    );
    let delivered = hosts[0].wait_delivered(1);
    assert_eq!(delivered[0].rcpt_to, ["dave@implicit.test"]);
    relay.wait_spool_empty();
}

/// Mail to `to` bounces at once, before any host is asked: a DSN with
/// `status` whose diagnostic names `why` reaches the sender's MX host.
fn assert_bounces_at_once(to: &str, status: &str, why: &str) {
    let (_dns, hosts, relay) = world(&["127.0.0.2", "127.0.0.4"]);
    submit(relay.smtp, SENDER, &[to], &message(to, "bounce"));
    let dsn = bounce_at(&hosts[1], SENDER);
    let report = dsn.recipient(to);
    assert_eq!(report.field("Action"), "failed");
    assert_eq!(report.field("Status"), status);
    assert!(report.field("Diagnostic-Code").contains(why), "{report:?}");
    relay.wait_spool_empty();
    assert_eq!(hosts[0].seen().connections, 0, "nobody was asked");
}

#[test]
fn a_null_mx_bounces_at_once_with_5_1_10() {
    assert_bounces_at_once("erin@nomail.test", "5.1.10", "null MX");
}

#[test]
fn a_domain_that_does_not_exist_bounces() {
    assert_bounces_at_once("frank@gone.test", "5.1.2", "does not exist");
}

#[test]
fn a_name_server_that_does_not_answer_defers_and_never_bounces() {
    let silent = Silent::start();
    let hosts = Receiver::on_one_port(&["127.0.0.2", "127.0.0.4"]);
    let config = mx_config(hosts[0].addr.port(), silent.addr);
    let relay = Relay::start_with(&with_keys(&config, "dns", "timeout = \"1s\""));
    let recipient = undeliverable_bob(&relay, 2);
    assert_eq!(
        recipient.code.map(|c| c.to_string()).as_deref(),
        Some("4.4.3"),
        "{recipient:?}"
    );
    assert!(
        recipient
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("DNS lookup for b.test failed"),
        "{recipient:?}"
    );
    assert_eq!(relay.spooled().len(), 1, "still queued, no bounce queued");
    assert_eq!(hosts[0].seen().connections + hosts[1].seen().connections, 0);
}

#[test]
fn mail_queued_while_the_hop_is_down_is_delivered_after_a_restart() {
    let (_dns, mut hosts, mut relay) = world(&["127.0.0.2", "127.0.0.3"]);
    hosts[0].stop();
    hosts[1].stop();
    submit(
        relay.smtp,
        SENDER,
        &["bob@b.test"],
        &message("bob@b.test", "kept"),
    );
    let id = relay.expect_spooled(1)[0].0.clone();
    relay.wait_for_log("\"result\":\"connect:", 1);
    assert!(relay.terminate().success(), "{}", relay.log());
    assert_eq!(relay.spooled()[0].0, id, "the message survives the stop");

    hosts[0].restart();
    relay.launch();
    let delivered = hosts[0].wait_delivered(1);
    assert_eq!(delivered[0].rcpt_to, ["bob@b.test"]);
    assert!(delivered[0].content().contains("Subject: kept\r\n"));
    relay.wait_spool_empty();
}

/// A kept connection the next hop has cut is not a failed delivery: the
/// next message goes over a new connection in the same attempt, whether
/// the cut shows before the RSET or only in its reply (the RSET travels
/// in front of MAIL, pipelined).
#[test]
fn a_kept_connection_cut_by_the_next_hop_costs_no_delay() {
    let (_dns, mut hosts, relay) = world(&["127.0.0.2"]);
    submit(
        relay.smtp,
        SENDER,
        &["bob@b.test"],
        &message("bob@b.test", "one"),
    );
    hosts[0].wait_delivered(1);
    relay.wait_spool_empty();
    hosts[0].stop();
    hosts[0].restart();
    submit(
        relay.smtp,
        SENDER,
        &["bob@b.test"],
        &message("bob@b.test", "two"),
    );
    let delivered = hosts[0].wait_delivered(2);
    assert!(delivered[1].content().contains("Subject: two\r\n"));
    relay.wait_spool_empty();
    let log = relay.log();
    assert!(
        !log.contains("\"result\":\"connection"),
        "a stale connection was taken for a failed attempt:\n{log}"
    );
    assert_eq!(relay.wait_for_log("message finished", 2).len(), 2);
}
