//! `[admin] metrics_listen`: after a known mix of traffic the Prometheus
//! counters equal what was sent, read from the exposition text.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::dns::{DnsServer, MAIL_AND_SENDER_ZONE};
use support::receiver::Receiver;
use support::relay::{mx_config, with_keys, Relay};
use support::smtp::{assert_queued, Client};
use support::tls::client_config;

/// B takes mail for example.test and refuses to relay anything else.
fn receiver() -> Relay {
    Relay::start("")
}

/// C offers no STARTTLS at all (no certificate configured).
fn plaintext_receiver() -> Relay {
    Relay::start_with(
        "[server]\nhostname = \"c.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [relay]\naccepted_domains = [\"c.test\"]\n\
         [[outbound]]\nname = \"internal\"\nrecipient_domains = [\"c.test\"]\nsmarthosts = [\"127.0.0.1:1\"]\n\
         [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n",
    )
}

fn sender(b: &Relay, c: &Relay) -> Relay {
    Relay::start_with(&format!(
        "[server]\nhostname = \"out.sender.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [tls]\ncert = \"relay.crt\"\nkey = \"relay.key\"\ngenerate_if_missing = true\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [[outbound]]\nname = \"to-b\"\nrecipient_domains = [\"example.test\", \"nowhere.test\", \"sender.test\"]\nsmarthosts = [\"{}\"]\n\
         [[outbound]]\nname = \"strict\"\nrecipient_domains = [\"c.test\"]\nsmarthosts = [\"{}\"]\ntls = \"required\"\n\
         [queue]\nretry_intervals = [\"1s\"]\n\
         [admin]\nmetrics_listen = \"127.0.0.1:0\"\n\
         [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n",
        b.smtp, c.smtp
    ))
}

/// The metrics address from the relay's `metrics listening` log line.
fn metrics_addr(relay: &Relay) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for line in relay.log().lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if event["fields"]["message"] == "metrics listening" {
                if let Some(addr) = event["fields"]["address"].as_str() {
                    return addr.parse().expect("metrics address");
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no metrics listener:\n{}",
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET path`: the status line and the body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// Every sample of the exposition text: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

fn send(client: &mut Client<impl Read + Write>, to: &str, subject: &str) {
    let content = format!("From: alice@sender.test\r\nSubject: {subject}\r\n\r\nhi\r\n");
    assert_queued(&client.deliver("alice@sender.test", &[to], &content));
}

#[test]
fn counters_equal_the_traffic_sent() {
    let (b, c) = (receiver(), plaintext_receiver());
    let a = sender(&b, &c);
    let addr = metrics_addr(&a);

    // Session 1, plaintext: two messages for B, one B will refuse.
    let (mut client, _) = Client::connect(a.smtp);
    client.command("EHLO client.test");
    send(&mut client, "bob@example.test", "one");
    send(&mut client, "bob@example.test", "two");
    send(&mut client, "eve@nowhere.test", "refused");
    client.command("QUIT");
    // Session 2, STARTTLS: one for B, one for C that has no STARTTLS.
    let (mut client, _) = Client::connect(a.smtp);
    client.command("EHLO client.test");
    let mut client = client.starttls(client_config(None));
    client.command("EHLO client.test");
    send(&mut client, "carol@example.test", "three");
    send(&mut client, "dave@c.test", "stuck");
    client.command("QUIT");
    drop(client);

    // Settled: B holds three messages, the refused one bounced (and the
    // bounce, to sender.test, was refused by B and dropped), "stuck" waits.
    let (body, m) = wait_metrics(&a, |m| {
        b.spooled().len() == 3
            && a.spooled().len() == 1
            && value(m, "tlsrelay_notices_total{kind=\"failure\"}") == 1.0
            && value(m, "tlsrelay_sessions_current") == 0.0
            && value(
                m,
                "tlsrelay_delivery_attempts_total{connector=\"strict\",level=\"required\",tls=\"-\",cipher=\"-\",outcome=\"deferred_for_policy\",dane=\"off\"}",
            ) >= 2.0
    });

    assert_eq!(
        value(&m, "tlsrelay_messages_accepted_total{connector=\"lan\"}"),
        5.0,
        "{body}"
    );
    assert_eq!(
        value(
            &m,
            "tlsrelay_sessions_total{connector=\"lan\",tls=\"plaintext\"}"
        ),
        1.0,
        "{body}"
    );
    assert_eq!(
        value(
            &m,
            "tlsrelay_sessions_total{connector=\"lan\",tls=\"TLSv1.3\"}"
        ),
        1.0,
        "{body}"
    );
    // Four messages went to B over TLS 1.3 (three taken, one refused); the
    // bounce to sender.test a fifth time.
    let tls13: f64 = m
        .iter()
        .filter(|(k, _)| {
            k.starts_with("tlsrelay_delivery_attempts_total{connector=\"to-b\",level=\"opportunistic\",tls=\"TLSv1.3\",cipher=\"TLS_")
                && k.ends_with("outcome=\"sent\",dane=\"off\"}")
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(tls13, 5.0, "{body}");
    assert_eq!(
        value(&m, "tlsrelay_recipients_total{result=\"delivered\"}"),
        3.0,
        "{body}"
    );
    // The refused recipient and its refused bounce.
    assert_eq!(
        value(&m, "tlsrelay_recipients_total{result=\"failed\"}"),
        2.0,
        "{body}"
    );
    assert!(
        value(&m, "tlsrelay_recipients_total{result=\"deferred\"}") >= 2.0,
        "{body}"
    );
    assert_eq!(value(&m, "tlsrelay_queue_messages"), 1.0, "{body}");
    assert!(value(&m, "tlsrelay_queue_oldest_seconds") < 60.0, "{body}");
    let expiry = value(
        &m,
        "tlsrelay_certificate_expiry_timestamp_seconds{certificate=\"tls.cert\"}",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    // gen-cert's default: 825 days.
    assert!(
        (expiry - now - 825.0 * 86_400.0).abs() < 2.0 * 86_400.0,
        "{body}"
    );
    assert!(
        body.contains("# TYPE tlsrelay_delivery_attempts_total counter\n"),
        "{body}"
    );

    let (status, _) = get(addr, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

/// `relay`'s metrics text and samples once `done` holds (bounded).
fn wait_metrics(
    relay: &Relay,
    done: impl Fn(&HashMap<String, f64>) -> bool,
) -> (String, HashMap<String, f64>) {
    let addr = metrics_addr(relay);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(addr, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        let m = samples(&body);
        if done(&m) {
            return (body, m);
        }
        assert!(
            Instant::now() < deadline,
            "not settled:\n{body}\n{}",
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn max_age_bounces_count_as_failed_and_mx_attempts_carry_connector_dash() {
    let dns = DnsServer::start(MAIL_AND_SENDER_ZONE);
    let next_hop = Receiver::start("127.0.0.2:0".parse().expect("address"));
    next_hop.on_rcpt("later@b.test", &["450 4.2.1 mailbox busy"]);
    let config = with_keys(
        &mx_config(next_hop.addr.port(), dns.addr),
        "queue",
        "max_age = \"2s\"\ndelay_warning_after = \"0s\"",
    );
    let relay = Relay::start_with(&format!(
        "{config}[admin]\nmetrics_listen = \"127.0.0.1:0\"\n"
    ));
    let (mut client, _) = Client::connect(relay.smtp);
    client.command("EHLO client.test");
    let content = "From: <>\r\nSubject: x\r\n\r\nhi\r\n";
    assert_queued(&client.deliver("", &["bob@b.test", "later@b.test"], content));
    client.command("QUIT");
    let sent = "tlsrelay_delivery_attempts_total{connector=\"-\",level=\"opportunistic\",tls=\"plaintext\",cipher=\"-\",outcome=\"sent\",dane=\"off\"}";
    let (_, m) = wait_metrics(&relay, |m| {
        value(m, "tlsrelay_recipients_total{result=\"failed\"}") >= 1.0
    });
    assert_eq!(
        value(&m, "tlsrelay_recipients_total{result=\"failed\"}"),
        1.0,
        "{m:?}"
    );
    assert_eq!(
        value(&m, "tlsrelay_recipients_total{result=\"delivered\"}"),
        1.0,
        "{m:?}"
    );
    assert!(value(&m, sent) >= 1.0, "{m:?}");
}

/// A message flagged REQUIRETLS over STARTTLS counts once as `accepted`;
/// the same MAIL in plaintext is refused and counts nothing.
#[test]
fn requiretls_messages_count_when_accepted() {
    let relay = Relay::start("[admin]\nmetrics_listen = \"127.0.0.1:0\"\n");
    let (mut client, _) = Client::connect(relay.smtp);
    client.command("EHLO client.test");
    assert_eq!(
        client.command("MAIL FROM:<alice@sender.test> REQUIRETLS"),
        "530 5.7.10 REQUIRETLS needs a TLS session: issue STARTTLS first\r\n"
    );
    let mut client = client.starttls(client_config(None));
    client.command("EHLO client.test");
    assert_eq!(
        client.command("MAIL FROM:<alice@sender.test> REQUIRETLS"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(
        client.command("RCPT TO:<bob@example.test>"),
        "250 2.1.5 Ok\r\n"
    );
    client.command("DATA");
    client.send(b"Subject: flagged\r\n\r\nhi\r\n");
    assert_queued(&client.command("."));
    send(&mut client, "bob@example.test", "unflagged");
    client.command("QUIT");
    let accepted = "tlsrelay_requiretls_messages_total{outcome=\"accepted\"}";
    let (body, m) = wait_metrics(&relay, |m| {
        value(m, "tlsrelay_messages_accepted_total{connector=\"-\"}") == 2.0
    });
    assert_eq!(value(&m, accepted), 1.0, "{body}");
}

/// A metrics address another program holds stops the start with exit 2
/// and says which address, for what, and how to find the holder.
#[test]
fn busy_metrics_address_says_so() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = holder.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("tlsrelay.toml");
    std::fs::write(
        &config,
        format!(
            "{}[admin]\nmetrics_listen = \"{taken}\"\n",
            support::relay::base_config()
        ),
    )
    .expect("config");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
        .args(["serve", "-c"])
        .arg(&config)
        .output()
        .expect("run tlsrelay");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {taken} (metrics)"))
            && stderr.contains("another program listens there")
            && stderr.contains(&format!("sport = :{}", taken.port())),
        "{stderr}"
    );
}
