//! The log traces mail (DESIGN.md §7): every refusal is one `refused`
//! line naming the client, its connector, the command, the address and
//! the reply; one grep for a queue id shows the message's whole life,
//! from acceptance to each recipient's fate and the notice it caused; and
//! `serve`'s fatal errors come in the log's own format, without colour
//! codes when standard error is not a terminal.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::dns::{DnsServer, MAIL_AND_SENDER_ZONE};
use support::receiver::Receiver;
use support::relay::{mx_config, with_keys, Relay};
use support::smtp::{assert_queued, Client};
use support::{arg, stderr, tlsrelay, write};

const SENDER: &str = "alice@sender.test";

/// The JSON log events of `relay` whose text contains `needle` (the grep).
fn grep(relay: &Relay, needle: &str) -> Vec<Value> {
    relay
        .log()
        .lines()
        .filter(|line| line.contains(needle))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The fields of the events with `message`.
fn events<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .map(|event| &event["fields"])
        .filter(|fields| fields["message"] == message)
        .collect()
}

/// Waits (bounded) until grepping `needle` finds `n` events `message`.
fn wait_for(relay: &Relay, needle: &str, message: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = grep(relay, needle);
        if events(&lines, message).len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "no {n} {message:?} lines for {needle}:\n{}",
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_grep_for_the_queue_id_shows_every_recipients_fate_and_the_notices() {
    let dns = DnsServer::start(MAIL_AND_SENDER_ZONE);
    let mut hosts = Receiver::on_one_port(&["127.0.0.2", "127.0.0.4"]);
    let sender_mx = hosts.pop().expect("sender MX");
    let next_hop = hosts.pop().expect("next hop");
    next_hop.on_rcpt("refused@b.test", &["550 5.1.1 no such user here"]);
    next_hop.on_rcpt("later@b.test", &["450 4.2.1 mailbox busy"]);
    let config = with_keys(
        &mx_config(next_hop.addr.port(), dns.addr),
        "queue",
        "max_age = \"3s\"\ndelay_warning_after = \"0s\"",
    );
    let relay = Relay::start_with(&config);

    let (mut client, _) = Client::connect(relay.smtp);
    client.ehlo();
    let to = ["bob@b.test", "refused@b.test", "later@b.test"];
    let content = format!(
        "From: {SENDER}\r\nTo: bob@b.test\r\nMessage-ID: <trace-1@sender.test>\r\nSubject: trace\r\n\r\nHello.\r\n"
    );
    let reply = client.deliver(SENDER, &to, &content);
    assert_queued(&reply);
    client.command("QUIT");
    let id = reply
        .trim_end()
        .rsplit(' ')
        .next()
        .expect("queue id")
        .to_string();

    // Both notices (the 550 at once, the 450 at max_age) reach the sender.
    sender_mx.wait_delivered(2);
    wait_for(&relay, &id, "message finished", 1);
    let life = wait_for(&relay, &id, "delivery status notification queued", 2);
    let all: Vec<&Value> = life.iter().map(|e| &e["fields"]).collect();
    // Every line the grep found names the message in `queue_id` (or
    // names the notice it caused, as `dsn_queue_id`).
    for fields in &all {
        assert!(
            fields["queue_id"] == id.as_str() || fields["dsn_queue_id"] == id.as_str(),
            "{fields}"
        );
    }

    let accepted = events(&life, "message accepted");
    assert_eq!(accepted.len(), 1, "{all:?}");
    let accepted = accepted[0];
    assert!(
        accepted["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("127.0.0.1:")),
        "{accepted}"
    );
    assert_eq!(accepted["client_name"], "unknown", "{accepted}");
    assert_eq!(accepted["connector"], "lan", "{accepted}");
    assert_eq!(accepted["tls"], "plaintext", "{accepted}");
    assert_eq!(accepted["cipher"], "-", "{accepted}");
    assert_eq!(accepted["requiretls"], false, "{accepted}");
    assert_eq!(accepted["from"], SENDER, "{accepted}");
    assert_eq!(accepted["to"], to.join(","), "{accepted}");
    assert_eq!(accepted["recipients"], 3, "{accepted}");
    assert_eq!(
        accepted["message_id"], "<trace-1@sender.test>",
        "{accepted}"
    );
    let size = accepted["size"].as_u64().expect("size");
    assert!(size >= content.len() as u64, "{accepted}");

    let delivered = events(&life, "delivered");
    assert_eq!(delivered.len(), 1, "{all:?}");
    assert_eq!(delivered[0]["to"], "bob@b.test");
    let hop = format!("127.0.0.2:{}", next_hop.addr.port());
    assert!(
        delivered[0]["host"]
            .as_str()
            .is_some_and(|h| h.starts_with("mx1.b.test")),
        "{}",
        delivered[0]
    );
    assert_eq!(delivered[0]["ip"], hop.as_str(), "{}", delivered[0]);
    assert!(
        delivered[0]["tls"]
            .as_str()
            .is_some_and(|t| t.starts_with("plaintext")),
        "{}",
        delivered[0]
    );
    assert!(
        delivered[0]["reply"]
            .as_str()
            .is_some_and(|r| r.contains("said: 250")),
        "{}",
        delivered[0]
    );

    let deferred = events(&life, "deferred");
    assert!(!deferred.is_empty(), "{all:?}");
    assert!(
        deferred.iter().all(|d| d["to"] == "later@b.test"),
        "{deferred:?}"
    );
    assert!(
        deferred[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("said: 450 mailbox busy")),
        "{}",
        deferred[0]
    );

    let failed = events(&life, "failed");
    assert_eq!(failed.len(), 2, "{all:?}");
    assert_eq!(failed[0]["to"], "refused@b.test");
    assert_eq!(failed[0]["status"], "5.1.1", "{}", failed[0]);
    assert!(
        failed[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("said: 550 no such user here")),
        "{}",
        failed[0]
    );
    assert_eq!(failed[1]["to"], "later@b.test");
    assert_eq!(failed[1]["by"], "max_age", "{}", failed[1]);
    assert!(
        failed[1]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("gave up after") && r.contains("mailbox busy")),
        "{}",
        failed[1]
    );

    // Each notice has its own id, whose grep shows its own delivery.
    let notices = events(&life, "delivery status notification queued");
    assert_eq!(notices.len(), 2, "{all:?}");
    for notice in notices {
        assert_eq!(notice["queue_id"], id.as_str());
        assert_eq!(notice["to"], SENDER);
        let dsn = notice["dsn_queue_id"].as_str().expect("dsn_queue_id");
        assert_ne!(dsn, id);
        let its_life = wait_for(&relay, dsn, "delivered", 1);
        let delivered = events(&its_life, "delivered");
        assert_eq!(delivered[0]["queue_id"], dsn, "{its_life:?}");
        assert_eq!(delivered[0]["to"], SENDER, "{its_life:?}");
        assert!(
            delivered[0]["reply"]
                .as_str()
                .is_some_and(|r| r.contains("said: 250")),
            "{its_life:?}"
        );
    }
}

/// The `refused` events of the relay's log.
fn refusals(relay: &Relay) -> Vec<Value> {
    grep(relay, "\"refused\"")
        .into_iter()
        .map(|e| e["fields"].clone())
        .collect()
}

#[test]
fn every_refusal_is_one_refused_line_with_client_connector_command_address_and_reply() {
    let relay = Relay::start(
        "[[inbound]]\nname = \"strict\"\nremote_ips = [\"127.0.0.0/8\"]\nrequire_tls = true\n",
    );
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    let port = c.stream().local_addr().expect("local address").port();
    assert_eq!(
        c.command("MAIL FROM:<alice@sender.test>"),
        "530 5.7.0 Must issue a STARTTLS command first\r\n"
    );
    assert!(c.command("FROB").starts_with("500 "));
    c.command("QUIT");

    let relay_denied = Relay::start("");
    let (mut d, _) = Client::connect(relay_denied.smtp);
    d.ehlo();
    let port_d = d.stream().local_addr().expect("local address").port();
    d.command("MAIL FROM:<alice@sender.test>");
    assert_eq!(
        d.command("RCPT TO:<bob@elsewhere.test>"),
        "550 5.7.1 Relaying denied\r\n"
    );
    // A handshake that cannot succeed: plaintext where TLS must start.
    assert!(d.command("STARTTLS").starts_with("220 "));
    d.send(b"EHLO not-tls\r\n");

    relay.wait_for_log("\"refused\"", 2);
    let seen = refusals(&relay);
    let client = format!("127.0.0.1:{port}");
    let tls_required = seen
        .iter()
        .find(|r| r["command"] == "MAIL")
        .unwrap_or_else(|| panic!("no MAIL refusal: {seen:?}"));
    assert_eq!(tls_required["client"], client.as_str());
    assert_eq!(tls_required["client_name"], "unknown");
    assert_eq!(tls_required["connector"], "strict");
    assert_eq!(tls_required["address"], "<alice@sender.test>");
    assert_eq!(
        tls_required["reply"],
        "530 5.7.0 Must issue a STARTTLS command first"
    );
    let syntax = seen
        .iter()
        .find(|r| r["command"] == "FROB")
        .unwrap_or_else(|| panic!("no FROB refusal: {seen:?}"));
    assert!(syntax["reply"]
        .as_str()
        .is_some_and(|r| r.starts_with("500 5.5.2")));

    relay_denied.wait_for_log("TLS handshake", 1);
    let seen = refusals(&relay_denied);
    let client = format!("127.0.0.1:{port_d}");
    let denied = seen
        .iter()
        .find(|r| r["command"] == "RCPT")
        .unwrap_or_else(|| panic!("no RCPT refusal: {seen:?}"));
    assert_eq!(denied["client"], client.as_str());
    assert_eq!(denied["connector"], "-");
    assert_eq!(denied["address"], "<bob@elsewhere.test>");
    assert_eq!(denied["from"], "<alice@sender.test>");
    assert_eq!(denied["reply"], "550 5.7.1 Relaying denied");
    let handshake = seen
        .iter()
        .find(|r| r["command"] == "STARTTLS")
        .unwrap_or_else(|| panic!("no STARTTLS refusal: {seen:?}"));
    assert_eq!(handshake["client"], client.as_str());
    assert_eq!(handshake["phase"], "TLS handshake");
    assert_eq!(handshake["reply"], "-");
    assert!(
        handshake["reason"]
            .as_str()
            .is_some_and(|r| r != "-" && !r.is_empty()),
        "{handshake}"
    );
}

#[test]
fn a_command_timeout_is_refused_with_its_phase() {
    let relay = Relay::start_server("command_timeout = \"1s\"", "");
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    c.command("MAIL FROM:<alice@sender.test>");
    assert!(c.reply().starts_with("421 4.4.2"));
    let lines = relay.wait_for_log("timeout exceeded", 1);
    let event: Value = serde_json::from_str(&lines[0]).expect("JSON");
    let fields = &event["fields"];
    assert_eq!(fields["message"], "refused", "{fields}");
    assert_eq!(fields["phase"], "command", "{fields}");
    assert_eq!(fields["command"], "MAIL", "{fields}");
}

/// `serve` with `config` and `--log-format format`: its exit code and stderr.
fn serve(config: &str, format: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(dir.path(), "tlsrelay.toml", config);
    let out = tlsrelay(&["--log-format", format, "serve", "-c", arg(&path)]);
    (out.status.code(), stderr(&out))
}

#[test]
fn fatal_start_up_errors_are_log_events_in_the_chosen_format() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address");
    let dir = tempfile::tempdir().expect("temp dir");
    let in_use = support::relay::base_config()
        .replace("127.0.0.1:0", &addr.to_string())
        .replace(
            "spool_dir = \"spool\"",
            &format!("spool_dir = {:?}", dir.path().join("spool")),
        )
        .replace(
            "\"relay.crt\"",
            &format!("{:?}", dir.path().join("relay.crt")),
        )
        .replace(
            "\"relay.key\"",
            &format!("{:?}", dir.path().join("relay.key")),
        );
    let bad =
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nbogus_key = 1\n";
    for (config, needle) in [(bad, "bogus_key"), (in_use.as_str(), &addr.to_string()[..])] {
        let (code, err) = serve(config, "json");
        assert!(matches!(code, Some(1 | 2)), "{code:?} {err}");
        let events: Vec<Value> = err
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect();
        assert!(
            events.iter().any(|e| e["level"] == "ERROR"
                && e["fields"]["message"] == "cannot start"
                && e["fields"]["error"]
                    .as_str()
                    .is_some_and(|t| t.contains(needle))),
            "{err}"
        );

        let (code, err) = serve(config, "text");
        assert!(matches!(code, Some(1 | 2)), "{code:?} {err}");
        assert!(
            err.contains("ERROR") && err.contains("cannot start") && err.contains(needle),
            "{err}"
        );
        assert!(
            !err.contains('\u{1b}'),
            "colour codes in a log that is not a terminal: {err:?}"
        );
    }
    drop(taken);
}
