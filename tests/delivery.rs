//! Delivery between two real relays: A relays to B, B keeps what arrives.
//! What B received is the proof, not what A logged.

mod support;

use std::time::{Duration, Instant};

use support::relay::{recipients, Relay};
use support::smtp::{assert_queued, Client};
use support::split_received;

/// Relay A: relays for localhost, sends example.test to B with `outbound_keys`.
fn sender_to(b: &Relay, outbound_keys: &str) -> Relay {
    sender_via(b.smtp, outbound_keys)
}

/// Relay A, sending example.test through `via` (host:port).
fn sender_via(via: std::net::SocketAddr, outbound_keys: &str) -> Relay {
    Relay::start_with(&format!(
        "[server]\nhostname = \"out.sender.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [tls]\ncert = \"relay.crt\"\nkey = \"relay.key\"\ngenerate_if_missing = true\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [[outbound]]\nname = \"to-b\"\nrecipient_domains = [\"example.test\"]\nsmarthosts = [\"{via}\"]\n{outbound_keys}\n\
         [queue]\nretry_intervals = [\"1s\"]\n\
         [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n"
    ))
}

const CONTENT: &str = "From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: across\r\n\r\nline one\r\n.leading dot\r\n";

fn send_through(a: &Relay, to: &[&str]) {
    let (mut client, _) = Client::connect(a.smtp);
    assert!(client
        .command("EHLO client.test")
        .starts_with("250-out.sender.test"));
    // Dot-stuffed on the wire, as every client must (RFC 5321 §4.5.2).
    let stuffed = CONTENT.replace("\r\n.", "\r\n..");
    assert_queued(&client.deliver("alice@sender.test", to, &stuffed));
    client.command("QUIT");
}

#[test]
fn opportunistic_delivery_arrives_intact_over_tls_in_one_transaction() {
    let b = Relay::start("");
    let a = sender_to(&b, "tls = \"opportunistic\"");
    send_through(&a, &["bob@example.test", "carol@example.test"]);
    a.wait_spool_empty();
    let received = b.expect_spooled(1);
    let (_, envelope, content) = &received[0];
    assert_eq!(envelope.sender, "alice@sender.test");
    assert_eq!(
        recipients(envelope),
        ["bob@example.test", "carol@example.test"],
        "one transaction for both"
    );
    let (b_header, rest) = split_received(content);
    let (a_header, original) = split_received(rest);
    assert!(b_header.contains("from out.sender.test"), "{b_header}");
    assert!(
        b_header.contains("(using TLSv1.3 with cipher"),
        "{b_header}"
    );
    assert!(
        a_header.contains("by out.sender.test (tlsrelay; connector lan)"),
        "{a_header}"
    );
    assert_eq!(String::from_utf8_lossy(original), CONTENT);
    // The verdict is logged (wait: the log is read from a pipe).
    a.wait_for_log("\"tls_level\":\"opportunistic\"", 1);
    a.wait_for_log("untrusted: self-signed", 1);
}

#[test]
fn tls_none_sends_plaintext() {
    let b = Relay::start("");
    let a = sender_to(&b, "tls = \"none\"");
    send_through(&a, &["bob@example.test"]);
    a.wait_spool_empty();
    let received = b.expect_spooled(1);
    let (b_header, _) = split_received(&received[0].2);
    assert!(!b_header.contains("using TLS"), "{b_header}");
    assert!(b_header.contains("with ESMTP id"), "{b_header}");
}

#[test]
fn verify_ca_never_sends_to_an_untrusted_server() {
    let b = Relay::start("");
    let a = sender_to(&b, "tls = \"verify-ca\"");
    send_through(&a, &["bob@example.test"]);
    // Several attempts (retry every second) all end deferred for policy.
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.log().matches("certificate not trusted").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "no deferral logged:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(b.spooled().is_empty(), "B received mail it must not have");
    assert_eq!(a.spooled().len(), 1, "A keeps the message");
    let state = serde_json::to_string(&a.state(&a.spooled()[0].0)).unwrap_or_default();
    assert!(
        state.contains("certificate not trusted: self-signed"),
        "{state}"
    );
    assert!(state.contains("\"code\":\"4.7.5\""), "{state}");
}

#[test]
fn pinned_key_is_trusted_whatever_signed_it() {
    let b = Relay::start("");
    let pin = support::openssl_spki_pin(&b.cert_path());
    let a = sender_to(&b, &format!("tls = \"pinned\"\nfingerprints = [\"{pin}\"]"));
    send_through(&a, &["bob@example.test"]);
    a.wait_spool_empty();
    let received = b.expect_spooled(1);
    let (b_header, _) = split_received(&received[0].2);
    assert!(b_header.contains("using TLSv1.3"), "{b_header}");
    a.wait_for_log("pinned certificate matched", 1);
}

/// `probe` against B, under A's configuration.
fn probe(a: &Relay) -> String {
    let config = a.dir().join("tlsrelay.toml");
    let output = support::tlsrelay(&["probe", "example.test", "-c", support::arg(&config)]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        support::stderr(&output)
    );
    support::stdout(&output)
}

#[test]
fn probe_reports_the_facts_and_the_verdict_per_level() {
    let b = Relay::start("");
    let a = sender_to(&b, "tls = \"verify-ca\"");
    let report = probe(&a);
    for expected in [
        "Connector    \"to-b\"\n",
        "TLS level    verify-ca\n",
        &format!("\nHost {}\n", b.smtp),
        "  STARTTLS offered   yes\n",
        "  TLS                TLSv1.3 TLS_AES_256_GCM_SHA384 key exchange X25519MLKEM768\n",
        "  Certificate 1      CN=relay.example.test (issuer CN=relay.example.test; expires ",
        "  Chain              no: self-signed certificate (CN=relay.example.test)",
        "  Levels accepting   opportunistic, required\n",
        "  Verdict            would defer: certificate not trusted: self-signed certificate",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }
    let pin = support::openssl_spki_pin(&b.cert_path());
    let pinned = sender_to(&b, &format!("tls = \"pinned\"\nfingerprints = [\"{pin}\"]"));
    let report = probe(&pinned);
    assert!(
        report.contains("  Levels accepting   opportunistic, required, pinned\n"),
        "{report}"
    );
    assert!(
        report.contains(
            "  Verdict            would deliver with TLSv1.3, pinned certificate matched\n"
        ),
        "{report}"
    );
    assert!(b.spooled().is_empty(), "probe sends no mail");
}

#[test]
fn the_next_message_to_the_same_server_reuses_the_connection() {
    let b = Relay::start("");
    let a = sender_to(&b, "tls = \"opportunistic\"");
    send_through(&a, &["bob@example.test"]);
    a.wait_spool_empty();
    send_through(&a, &["carol@example.test"]);
    a.wait_spool_empty();
    assert_eq!(b.expect_spooled(2).len(), 2);
    a.wait_for_log("(reused)", 1);
    // Both messages came over one TLS session (RSET between them), which
    // A closes once it has been idle a few seconds.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.log().contains("\"messages\":2") {
        assert!(
            Instant::now() < deadline,
            "B never saw one session carry two messages:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A man in the middle between A and `to`: `rewrite` changes what the
/// server says until TLS starts (after B's `220 2.0.0 Ready to start TLS`
/// the bytes pass untouched); returns the address to connect to.
fn mitm(to: std::net::SocketAddr, rewrite: fn(&str) -> String) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(to) else {
                continue;
            };
            let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
            });
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut plaintext = true;
                while let Ok(n) = s_read.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let out = match plaintext {
                        true => {
                            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                            plaintext = !text.contains("Ready to start TLS");
                            rewrite(&text).into_bytes()
                        }
                        false => buf[..n].to_vec(),
                    };
                    if c_write.write_all(&out).is_err() {
                        break;
                    }
                }
                let _ = c_write.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    addr
}

/// Hides STARTTLS from EHLO replies, as some firewalls and attackers do.
fn strip_starttls(text: &str) -> String {
    text.replace("STARTTLS", "XXXXXXXA")
}

/// Sends a forged reply right behind the 220 to STARTTLS, in the same
/// packet (response injection, RFC 3207 §5).
fn inject_after_starttls(text: &str) -> String {
    text.replace(
        "220 2.0.0 Ready to start TLS\r\n",
        "220 2.0.0 Ready to start TLS\r\n250-injected\r\n250 STARTTLS\r\n",
    )
}

#[test]
fn injected_replies_after_starttls_are_ignored() {
    let b = Relay::start("");
    let proxy = mitm(b.smtp, inject_after_starttls);
    let a = sender_via(proxy, "tls = \"required\"");
    send_through(&a, &["bob@example.test"]);
    a.wait_spool_empty();
    let received = b.expect_spooled(1);
    let (b_header, _) = split_received(&received[0].2);
    assert!(
        b_header.contains("(using TLSv1.3"),
        "delivered over TLS despite the injection: {b_header}"
    );
    assert!(!a.log().contains("TLS failed"), "{}", a.log());
}

#[test]
fn a_starttls_stripper_gets_plaintext_only_from_opportunistic() {
    let b = Relay::start("");
    let proxy = mitm(b.smtp, strip_starttls);
    let opportunistic = sender_via(proxy, "tls = \"opportunistic\"");
    send_through(&opportunistic, &["bob@example.test"]);
    opportunistic.wait_spool_empty();
    let received = b.expect_spooled(1);
    let (b_header, _) = split_received(&received[0].2);
    assert!(!b_header.contains("using TLS"), "{b_header}");
    opportunistic.wait_for_log("plaintext (STARTTLS not offered)", 1);

    let required = sender_via(proxy, "tls = \"required\"");
    send_through(&required, &["carol@example.test"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !required.log().contains("deferred: STARTTLS not offered") {
        assert!(Instant::now() < deadline, "{}", required.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        b.spooled().len(),
        1,
        "required sent nothing through the stripper"
    );
    assert_eq!(
        required.spooled().len(),
        1,
        "the message waits in the queue"
    );
}

/// Every host fails: `probe` still ends with one overall verdict line,
/// saying the mail would wait in the queue and why, host by host.
#[test]
fn probe_gives_one_verdict_when_every_host_fails() {
    let dead: Vec<std::net::SocketAddr> = (0..2)
        .map(|_| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr")
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = support::write(
        dir.path(),
        "tlsrelay.toml",
        &format!(
            "[server]\nhostname = \"out.sender.test\"\nspool_dir = \"spool\"\n\
             [[outbound]]\nname = \"dead\"\nrecipient_domains = [\"example.test\"]\n\
             smarthosts = [\"{}\", \"{}\"]\ntls = \"required\"\n\
             [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n",
            dead[0], dead[1]
        ),
    );
    let output = support::tlsrelay(&["probe", "example.test", "-c", support::arg(&config)]);
    let report = support::stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        support::stderr(&output)
    );
    let last = report.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "Verdict: mail to example.test would wait in the queue: no host accepted \
             ({}: {e}; {}: {e})",
            dead[0],
            dead[1],
            e = "connect: Connection refused (os error 111)"
        ),
        "{report}"
    );
    assert_eq!(report.matches("Verdict:").count(), 1, "{report}");
}
