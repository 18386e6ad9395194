//! Retries and bounces end to end: a scripted receiver answers 4xx or 5xx,
//! and the delivery status notification (RFC 3464) has to reach the MX
//! host of the sender's domain, found through the test DNS server like
//! any other mail. What the receivers saw is the proof.

mod support;

use support::dns::{DnsServer, MAIL_AND_SENDER_ZONE};
use support::dsn::{bounce_at, python_view, Dsn};
use support::receiver::Receiver;
use support::relay::{mx_config, with_keys, Relay};
use support::smtp::{assert_queued, submit, Client};
use support::tls_receiver::{AfterTls, TlsReceiver};

#[path = "delivery_dsn/requiretls.rs"]
mod requiretls;

const SENDER: &str = "alice@sender.test";

fn message(subject: &str) -> String {
    format!("From: {SENDER}\r\nTo: bob@b.test\r\nSubject: {subject}\r\n\r\nHello.\r\n")
}

/// The next hop, the sender's MX host, a DNS server naming both, and a
/// relay on [`mx_config`] with `queue_keys` added to its `[queue]`.
struct World {
    _dns: DnsServer,
    next_hop: Receiver,
    sender_mx: Receiver,
    relay: Relay,
}

fn world(queue_keys: &str) -> World {
    world_with(queue_keys, "")
}

/// [`world`] with more sections (connectors) in the relay's config;
/// `{PORT}` in them is the next hop's port.
fn world_with(queue_keys: &str, extra: &str) -> World {
    let dns = DnsServer::start(MAIL_AND_SENDER_ZONE);
    let mut hosts = Receiver::on_one_port(&["127.0.0.2", "127.0.0.4"]);
    let sender_mx = hosts.pop().expect("sender MX");
    let next_hop = hosts.pop().expect("next hop");
    let mut config = mx_config(next_hop.addr.port(), dns.addr);
    if !queue_keys.is_empty() {
        config = with_keys(&config, "queue", queue_keys);
    }
    config.push_str(&extra.replace("{PORT}", &next_hop.addr.port().to_string()));
    World {
        _dns: dns,
        next_hop,
        sender_mx,
        relay: Relay::start_with(&config),
    }
}

fn bounce(world: &World) -> Dsn {
    bounce_at(&world.sender_mx, SENDER)
}

#[test]
fn a_4xx_is_retried_until_the_receiver_takes_the_mail() {
    let world = world("");
    world
        .next_hop
        .on_data(&["451 4.3.0 come back later", "250 2.0.0 ok"]);
    submit(world.relay.smtp, SENDER, &["bob@b.test"], &message("again"));
    let delivered = world.next_hop.wait_delivered(1);
    assert!(delivered[0].content().contains("Subject: again\r\n"));
    world.relay.wait_spool_empty();
    let seen = world.next_hop.seen();
    let replies: Vec<_> = seen
        .transactions
        .iter()
        .map(|t| t.data_reply.as_deref().unwrap_or("-"))
        .collect();
    assert_eq!(replies, ["451 4.3.0 come back later", "250 2.0.0 ok"]);
    assert_eq!(
        seen.transactions[0].data, seen.transactions[1].data,
        "the same content both times"
    );
    assert_eq!(
        world.sender_mx.seen().connections,
        0,
        "no bounce, no delay notice"
    );
}

#[test]
fn a_5xx_bounces_an_rfc3464_report_to_the_senders_domain() {
    let world = world("");
    world
        .next_hop
        .on_rcpt("bob@b.test", &["550 5.1.1 <bob@b.test>: no such user"]);
    submit(
        world.relay.smtp,
        SENDER,
        &["bob@b.test"],
        &message("refused"),
    );
    let dsn = bounce(&world);
    assert_eq!(
        dsn.part_types,
        [
            "text/plain; charset=utf-8",
            "message/delivery-status",
            "message/rfc822"
        ]
    );
    assert_eq!(dsn.header("To"), Some(&*format!("<{SENDER}>")));
    assert_eq!(
        dsn.per_message.field("Reporting-MTA"),
        "dns; relay.example.test"
    );
    let report = dsn.recipient("bob@b.test");
    assert_eq!(report.field("Action"), "failed");
    assert_eq!(report.field("Status"), "5.1.1");
    assert_eq!(report.field("Remote-MTA"), "dns; mx1.b.test");
    assert_eq!(
        report.field("Diagnostic-Code"),
        "smtp; 550 5.1.1 <bob@b.test>: no such user",
        "the remote reply as the server sent it (RFC 3464 §2.3.6)"
    );
    assert!(dsn.text.contains("no such user"), "{}", dsn.text);
    world.relay.wait_spool_empty();
    let seen = world.next_hop.seen();
    assert!(seen.delivered().is_empty(), "{seen:?}");
    assert_eq!(seen.transactions.len(), 1, "a 5xx is not retried");
}

#[test]
fn forced_tls_waits_in_the_queue_and_bounces_at_max_age_with_the_tls_reason() {
    // The next hop offers no STARTTLS; b.test is under `tls = "required"`.
    let forced =
        "[[outbound]]\nname = \"forced\"\nrecipient_domains = [\"b.test\"]\ntls = \"required\"\n";
    let world = world_with("max_age = \"3s\"\ndelay_warning_after = \"0s\"", forced);
    submit(
        world.relay.smtp,
        SENDER,
        &["bob@b.test"],
        &message("secret"),
    );
    let dsn = bounce(&world);
    let report = dsn.recipient("bob@b.test");
    assert_eq!(report.field("Action"), "failed");
    assert_eq!(
        report.field("Status"),
        "5.7.4",
        "the 4.7.4 of each deferral, now final"
    );
    let diagnostic = report.field("Diagnostic-Code");
    assert!(
        diagnostic.contains("mx1.b.test") && diagnostic.contains("STARTTLS not offered"),
        "{diagnostic}"
    );
    world.relay.wait_spool_empty();
    // Never a byte of the message in plaintext: no transaction reached DATA.
    let seen = world.next_hop.seen();
    assert!(
        seen.transactions.iter().all(|t| t.data.is_none()),
        "{seen:?}"
    );
    assert!(
        !seen.transactions.iter().any(|t| !t.rcpt_to.is_empty()),
        "{seen:?}"
    );
}

#[test]
fn max_age_bounces_with_the_last_reason() {
    let world = world("max_age = \"3s\"\ndelay_warning_after = \"0s\"");
    world.next_hop.on_rcpt("*", &["452 4.2.2 mailbox full"]);
    submit(
        world.relay.smtp,
        SENDER,
        &["bob@b.test"],
        &message("too late"),
    );
    let dsn = bounce(&world);
    let report = dsn.recipient("bob@b.test");
    assert_eq!(report.field("Action"), "failed");
    assert_eq!(report.field("Status"), "5.2.2", "the last 4.2.2, now final");
    assert_eq!(
        report.field("Diagnostic-Code"),
        "smtp; 452 4.2.2 mailbox full"
    );
    assert!(dsn.text.contains("gave up after"), "{}", dsn.text);
    world.relay.wait_spool_empty();
    let seen = world.next_hop.seen();
    assert!(
        seen.transactions.len() >= 2,
        "retried before giving up: {seen:?}"
    );
    assert!(seen.delivered().is_empty());
}

#[test]
fn one_recipient_refused_bounces_alone_and_the_other_is_delivered() {
    let world = world("");
    world
        .next_hop
        .on_rcpt("carol@b.test", &["550 5.1.1 carol left"]);
    submit(
        world.relay.smtp,
        SENDER,
        &["bob@b.test", "carol@b.test"],
        &message("half"),
    );
    let delivered = world.next_hop.wait_delivered(1);
    assert_eq!(delivered[0].rcpt_to, ["bob@b.test"]);
    assert_eq!(
        delivered[0].refused,
        [(
            "carol@b.test".to_string(),
            "550 5.1.1 carol left".to_string()
        )],
        "both in one transaction"
    );
    let dsn = bounce(&world);
    assert_eq!(dsn.recipients.len(), 1, "{dsn:#?}");
    assert_eq!(dsn.recipient("carol@b.test").field("Status"), "5.1.1");
    world.relay.wait_spool_empty();
    assert_eq!(world.next_hop.seen().transactions.len(), 1, "bob once");
}

#[test]
fn a_failure_from_the_null_sender_is_dropped_not_bounced() {
    let world = world("");
    world
        .next_hop
        .on_rcpt("bob@b.test", &["550 5.1.1 no such user"]);
    submit(world.relay.smtp, "", &["bob@b.test"], &message("a bounce"));
    world.next_hop.wait_until("the refused RCPT", |s| {
        s.transactions.iter().any(|t| !t.refused.is_empty())
    });
    world.relay.wait_spool_empty();
    let log = world
        .relay
        .wait_for_log("no delivery status notification", 1)
        .join("\n");
    assert!(log.contains("the sender is <>"), "{log}");
    // Give a wrongly queued bounce time to go out before looking.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        !world
            .relay
            .log()
            .contains("delivery status notification queued"),
        "no notice was even queued:\n{}",
        world.relay.log()
    );
    assert_eq!(world.sender_mx.seen().connections, 0);
    assert_eq!(world.next_hop.seen().transactions.len(), 1);
    assert!(world.relay.spooled().is_empty());
}

#[test]
fn a_refused_mail_from_is_every_recipients_reason() {
    let world = world("");
    let refusal = "550 5.7.1 <alice@sender.test>: sender refused by policy";
    world.next_hop.on_mail(&[refusal]);
    submit(
        world.relay.smtp,
        SENDER,
        &["bob@b.test", "carol@b.test"],
        &message("sender refused"),
    );
    let notice = world.sender_mx.wait_delivered(1).remove(0);
    let view = python_view(notice.data.as_deref().unwrap_or_default());
    let recipients = view["recipients"].as_array().cloned().unwrap_or_default();
    assert_eq!(recipients.len(), 2, "{view}");
    for report in &recipients {
        assert_eq!(report["status"], "5.7.1", "{view}");
        assert_eq!(
            report["diagnostic-code"],
            format!("smtp; {refusal}"),
            "the refusal of MAIL, not the 503 the pipelined RCPT got: {view}"
        );
    }
    // The attempt's log line gives the same reason.
    let attempt = world
        .relay
        .wait_for_log("\"host\":\"mx1.b.test\"", 1)
        .remove(0);
    // The result field alone: the queue id is hex and may hold "503".
    let result: serde_json::Value = serde_json::from_str(&attempt).unwrap_or_default();
    let result = result["fields"]["result"].as_str().unwrap_or_default();
    assert!(
        result.starts_with("550 ") && !result.contains("503"),
        "{attempt}"
    );
    world.relay.wait_spool_empty();
}

/// Submits `content` from [`SENDER`] to `to` with `MAIL FROM … RET=FULL`.
fn submit_ret_full(world: &World, to: &str, content: &str) {
    let (mut client, _) = Client::connect(world.relay.smtp);
    client.ehlo();
    let mail = client.command(&format!("MAIL FROM:<{SENDER}> RET=FULL"));
    assert!(mail.starts_with("250"), "{mail}");
    let rcpt = client.command(&format!("RCPT TO:<{to}>"));
    assert!(rcpt.starts_with("250"), "{rcpt}");
    let data = client.command("DATA");
    assert!(data.starts_with("354"), "{data}");
    client.send(format!("{content}.\r\n").as_bytes());
    assert_queued(&client.reply());
    client.command("QUIT");
}

#[test]
fn ret_full_returns_headers_alone_above_return_content_limit() {
    let world = world("");
    world.next_hop.on_rcpt("*", &["550 5.1.1 no such user"]);
    let mut big = message("large");
    let line = format!("{}\r\n", "y".repeat(98));
    while big.len() < 300_000 {
        big.push_str(&line);
    }
    submit_ret_full(&world, "bob@b.test", &big);
    let notice = world.sender_mx.wait_delivered(1).remove(0);
    let content = notice.data.unwrap_or_default();
    let view = python_view(&content);
    assert_eq!(view["parts"][2]["type"], "text/rfc822-headers", "{view}");
    assert!(
        content.len() < 50_000,
        "the default limit is 50KB; the notice has {} bytes",
        content.len()
    );
    let text = String::from_utf8_lossy(&content);
    assert!(text.contains("Subject: large\r\n"), "the headers come back");
    assert!(!text.contains("yyyyyyyy"), "the body does not");
    world.relay.wait_spool_empty();

    // A small message comes back whole, as RET=FULL asks.
    submit_ret_full(&world, "bob@b.test", &message("small"));
    let notice = world.sender_mx.wait_delivered(2).remove(1);
    let view = python_view(notice.data.as_deref().unwrap_or_default());
    assert_eq!(view["parts"][2]["type"], "message/rfc822", "{view}");
    assert!(notice.content().contains("Hello.\r\n"));
}

#[test]
fn a_tls_failure_reason_is_short_and_carries_no_url() {
    // mx1.b.test (127.0.0.2) completes the TLS handshake, then drops TCP
    // at MAIL FROM without a close_notify; b.test requires TLS.
    let listener = std::net::TcpListener::bind("127.0.0.2:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let _tls = TlsReceiver::on(
        listener,
        "mx1.b.test",
        &[&rustls::version::TLS13],
        AfterTls::HangUpOnMail,
    );
    let sender_mx = Receiver::start(format!("127.0.0.4:{port}").parse().expect("addr"));
    let dns = DnsServer::start(MAIL_AND_SENDER_ZONE);
    let config = with_keys(
        &mx_config(port, dns.addr),
        "queue",
        "max_age = \"3s\"\ndelay_warning_after = \"0s\"",
    );
    let relay = Relay::start_with(&format!(
        "{config}[[outbound]]\nname = \"forced\"\nrecipient_domains = [\"b.test\"]\ntls = \"required\"\n"
    ));
    submit(relay.smtp, SENDER, &["bob@b.test"], &message("cut off"));
    let notice = sender_mx.wait_delivered(1).remove(0);
    let view = python_view(notice.data.as_deref().unwrap_or_default());
    let diagnostic = view["recipients"][0]["diagnostic-code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(diagnostic.contains("close_notify"), "{view}");
    assert!(!diagnostic.contains("://"), "no URL: {diagnostic}");
    assert!(diagnostic.len() < 200, "short: {diagnostic}");
    let attempts = relay.wait_for_log("\"host\":\"mx1.b.test\"", 1).join("\n");
    assert!(
        !attempts.contains("://"),
        "no URL in the log either: {attempts}"
    );
    relay.wait_spool_empty();
}

#[test]
fn remote_mta_names_the_smarthost_and_an_address_only_without_a_name() {
    // c.test goes to the smarthost mx1.b.test by name, d.test to the
    // same receiver by its address; both refuse.
    let world = world_with(
        "",
        "[[outbound]]\nname = \"by-name\"\nrecipient_domains = [\"c.test\"]\nsmarthosts = [\"mx1.b.test:{PORT}\"]\n\
         [[outbound]]\nname = \"by-address\"\nrecipient_domains = [\"d.test\"]\nsmarthosts = [\"127.0.0.2:{PORT}\"]\n",
    );
    world.next_hop.on_rcpt("*", &["550 5.1.1 no such user"]);
    submit(
        world.relay.smtp,
        SENDER,
        &["carol@c.test"],
        &message("by name"),
    );
    let by_name = bounce(&world);
    assert_eq!(
        by_name.recipient("carol@c.test").field("Remote-MTA"),
        "dns; mx1.b.test"
    );
    submit(
        world.relay.smtp,
        SENDER,
        &["dave@d.test"],
        &message("by address"),
    );
    let notice = world.sender_mx.wait_delivered(2).remove(1);
    let view = python_view(notice.data.as_deref().unwrap_or_default());
    // What Postfix 3.7 writes for relayhost = [127.0.0.1]:port.
    assert_eq!(
        view["recipients"][0]["remote-mta"], "dns; 127.0.0.2",
        "{view}"
    );
    world.relay.wait_spool_empty();
}
