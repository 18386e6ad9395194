//! DANE in the delivery path (issue 15), in process: a resolver double
//! that answers as a validating resolver would (secure, insecure, bogus),
//! the relay's own deliverer and `probe`, and real TLS receivers on
//! 127.0.0.2, 127.0.0.3 … sharing `[delivery] mx_port`. What the
//! receivers saw is the proof; probe's verdict and `dane` word must agree
//! with what delivery did. The same cells against nsd and a signed zone
//! are in tests/real_peers/dane_delivery.rs.

mod support;

use std::net::{IpAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tlsrelay::config::Config;
use tlsrelay::outbound::dane::{Fault, TlsaAnswer};
use tlsrelay::outbound::deliver::{Deliverer, Settings};
use tlsrelay::outbound::memory::TlsMemory;
use tlsrelay::outbound::memory_file::system_clock;
use tlsrelay::outbound::route::MxAnswer;
use tlsrelay::tls::dane::Tlsa;

use support::ca::{self_signed, Key, Spec};
use support::dns::{DnsServer, MAIL_AND_SENDER_ZONE};
use support::prediction::{delivered, predicted, probe_then_deliver, Fate};
use support::receiver::{listeners_on_one_port, Receiver};
use support::relay::{mx_config, Relay};
use support::smtp::submit;
use support::tls_receiver::{tlsa_3_1_1, AfterTls, TlsReceiver};
use support::validated_dns::{insecure, secure, SignedDns};

fn ip(text: &str) -> IpAddr {
    text.parse().expect("IP")
}

fn one_mx(host: &str) -> MxAnswer {
    MxAnswer::Hosts(vec![(10, format!("{host}."))])
}

/// The next hops, all on one port: TLS on 127.0.0.2 (A) and .3 (B), both
/// self-signed for a name no MX has; no STARTTLS on .4 (C) and .5 (D).
/// Each plaintext cell has its own address: a kept connection would
/// otherwise serve the next (`(reused)` in delivery's summary).
struct Hops {
    a: TlsReceiver,
    b: TlsReceiver,
    c: Receiver,
    d: Receiver,
    port: u16,
}

fn hops() -> Hops {
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let listeners = listeners_on_one_port(&["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]);
    let port = listeners[0].local_addr().expect("local_addr").port();
    let [a, b, c, d]: [TcpListener; 4] = listeners.try_into().expect("four listeners");
    Hops {
        a: TlsReceiver::on(a, "not-the-mx.example", &versions, AfterTls::Serve),
        b: TlsReceiver::on(b, "not-the-mx.example", &versions, AfterTls::Serve),
        c: Receiver::on(c),
        d: Receiver::on(d),
        port,
    }
}

/// The zone: one domain per cell.
fn zone(hops: &Hops) -> SignedDns {
    let wrong = tlsa_3_1_1(&self_signed(&Spec::new(&["mx.example"], Key::P256)).der);
    let (a, b) = (tlsa_3_1_1(&hops.a.cert), tlsa_3_1_1(&hops.b.cert));
    let mut dns = SignedDns::default();
    let mut host = |name: &'static str, addr: &str, tlsa: Option<TlsaAnswer>| {
        dns.addresses.insert(name, secure(vec![ip(addr)]));
        if let Some(tlsa) = tlsa {
            dns.tlsa.insert(name, tlsa);
        }
    };
    let records = |list: &[&Tlsa]| {
        Some(TlsaAnswer::Records(
            list.iter().map(|r| (*r).clone()).collect(),
        ))
    };
    host("mx.ee.test", "127.0.0.2", records(&[&a]));
    host("mx1.rollover.test", "127.0.0.2", records(&[&wrong]));
    host("mx2.rollover.test", "127.0.0.3", records(&[&b]));
    host("mx.wrongkey.test", "127.0.0.2", records(&[&wrong]));
    host("mx.nostarttls.test", "127.0.0.4", records(&[&a]));
    host(
        "mx.bogustlsa.test",
        "127.0.0.2",
        Some(TlsaAnswer::Bogus("RRSIG expired".into())),
    );
    host("mx.denied.test", "127.0.0.4", None);
    let mut usage1 = a.clone();
    usage1.usage = 1;
    host("mx.encrypt.test", "127.0.0.3", records(&[&usage1]));
    host("mx.required.test", "127.0.0.3", records(&[&b]));
    host("mx.verifyhost.test", "127.0.0.2", records(&[&a]));
    dns.addresses
        .insert("mx.insecure.test", insecure(vec![ip("127.0.0.5")]));
    // The bogus domain's own address: never where its mail goes.
    dns.addresses
        .insert("bogusmx.test", insecure(vec![ip("127.0.0.5")]));
    for (domain, mx) in [
        ("ee.test", "mx.ee.test"),
        ("wrongkey.test", "mx.wrongkey.test"),
        ("nostarttls.test", "mx.nostarttls.test"),
        ("bogustlsa.test", "mx.bogustlsa.test"),
        ("denied.test", "mx.denied.test"),
        ("encrypt.test", "mx.encrypt.test"),
        ("verifyhost.test", "mx.verifyhost.test"),
    ] {
        dns.mx.insert(domain, secure(one_mx(mx)));
    }
    dns.mx.insert(
        "rollover.test",
        secure(MxAnswer::Hosts(vec![
            (10, "mx1.rollover.test.".into()),
            (20, "mx2.rollover.test.".into()),
        ])),
    );
    dns.mx
        .insert("insecure.test", insecure(one_mx("mx.insecure.test")));
    // `tls = "dane"`, and the MX answer is unsigned: DANE cannot apply.
    dns.mx
        .insert("required.test", insecure(one_mx("mx.required.test")));
    dns.mx.insert(
        "bogusmx.test",
        Err(Fault::Bogus {
            name: "bogusmx.test.".into(),
            reason: "DNSSEC validation failed".into(),
        }),
    );
    dns
}

fn deliverer(dir: &Path, port: u16, dane: bool, dns: SignedDns) -> Deliverer<SignedDns> {
    let text = format!(
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"{}\"\n\
         [delivery]\nmx_port = {port}\nconnect_timeout = \"3s\"\ndane = {dane}\n\
         [dns]\nnameservers = [\"127.0.0.1:1\"]\n\
         [[outbound]]\nname = \"dane-only\"\nrecipient_domains = [\"required.test\"]\ntls = \"{}\"\n\
         [[outbound]]\nname = \"checked\"\nrecipient_domains = [\"verifyhost.test\"]\ntls = \"verify-host\"\n",
        dir.display(),
        if dane { "dane" } else { "required" },
    );
    let config = Config::parse(&dir.join("relay.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    let settings = Settings::new(&config, dns, None).expect("settings");
    let memory = TlsMemory::reader(dir, Duration::from_secs(3600), system_clock());
    Deliverer::with_settings(settings, Arc::new(memory))
}

/// What probe predicted (with its `dane` word and report) and what
/// delivery did, for one message to `domain`.
struct Cell {
    probe: Fate,
    word: &'static str,
    report: String,
    delivery: Fate,
}

async fn cell(deliverer: &Deliverer<SignedDns>, domain: &str) -> Cell {
    let content = format!("Subject: to {domain}\r\n\r\nDANE cell {domain}\r\n");
    let (report, outcome) =
        probe_then_deliver(deliverer, domain, &format!("bob@{domain}"), &content).await;
    Cell {
        probe: predicted(&report.prediction),
        word: report.prediction.dane(),
        report: report.text,
        delivery: delivered(&outcome),
    }
}

/// The deferral every DANE refusal comes to: 4.7.x, a reason naming DANE.
fn assert_deferred_naming_dane(cell: &Cell, status: &str) {
    match &cell.delivery {
        Fate::Deferred {
            status: got,
            reason,
        } => {
            assert_eq!(got, status, "{reason}\n{}", cell.report);
            assert!(reason.contains("DANE"), "{reason}\n{}", cell.report);
        }
        other => panic!("not deferred: {other:?}\n{}", cell.report),
    }
}

fn tls_messages(receiver: &TlsReceiver, domain: &str) -> usize {
    receiver.taken(&format!("DANE cell {domain}"))
}

fn plain_messages(receiver: &Receiver, domain: &str) -> usize {
    let wanted = format!("DANE cell {domain}");
    let seen = receiver.seen();
    seen.transactions
        .iter()
        .filter(|t| t.content().contains(&wanted) || t.rcpt_to.iter().any(|r| r.ends_with(domain)))
        .count()
}

/// Seeds the broken-TLS memory file (format 2, as `TlsMemory` keeps it):
/// the Modern and TLS 1.2 rungs of `server` failed 3 times over two hours,
/// last tried 10 minutes ago, so the ladder would skip both.
fn remember_broken(dir: &Path, server: std::net::SocketAddr) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let entries: Vec<String> = ["Modern", "Tls12"]
        .iter()
        .map(|rung| {
            format!(
                r#"{{"server":"{server}","host":"{ip}","rung":"{rung}","failures":3,"first_failure":{first},"last_failure":{last},"last_tried":{last},"until":{until}}}"#,
                ip = server.ip(),
                first = now - 7200,
                last = now - 600,
                until = now + 72_000,
            )
        })
        .collect();
    let text = format!(r#"{{"version":2,"entries":[{}]}}"#, entries.join(","));
    std::fs::write(dir.join("tls-memory.json"), text).expect("write the memory file");
}

/// The next hops, the zone, a deliverer with `[delivery] dane = dane`.
struct World {
    hops: Hops,
    deliverer: Deliverer<SignedDns>,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl World {
    /// With DANE on, the broken-TLS memory holds every TLS rung of A
    /// (127.0.0.2) as confirmed broken: an opportunistic ladder would start
    /// A on its plaintext rung, which DANE must never let it do.
    fn new(dane: bool) -> World {
        let hops = hops();
        let dir = tempfile::tempdir().expect("tempdir");
        if dane {
            remember_broken(dir.path(), hops.a.addr);
        }
        World {
            deliverer: deliverer(dir.path(), hops.port, dane, zone(&hops)),
            hops,
            runtime: tokio::runtime::Runtime::new().expect("runtime"),
            _dir: dir,
        }
    }

    /// One cell; probe must have predicted what delivery did.
    fn run(&self, domain: &str) -> Cell {
        let cell = self.runtime.block_on(cell(&self.deliverer, domain));
        assert_eq!(
            cell.probe, cell.delivery,
            "{domain}: probe vs delivery\n{}",
            cell.report
        );
        cell
    }
}

#[test]
fn dane_decides_each_host_and_probe_agrees_with_delivery() {
    let world = World::new(true);
    let (hops, run) = (&world.hops, |domain: &str| world.run(domain));
    let tls_note = |cell: &Cell| match &cell.delivery {
        Fate::Tls { note, .. } => note.clone(),
        other => panic!("not over TLS: {other:?}\n{}", cell.report),
    };

    // Secure 3 1 1, right key: over TLS to a self-signed certificate for
    // another name (DANE-EE checks neither), SNI the MX host; the memory
    // that would start an opportunistic ladder on plaintext is not asked.
    let ee = run("ee.test");
    assert_eq!(tls_note(&ee), "DANE verified (TLSA usage 3)");
    assert_eq!(ee.word, "verified");
    assert_eq!(tls_messages(&hops.a, "ee.test"), 1);
    assert!(hops
        .a
        .sessions()
        .iter()
        .any(|s| s.sni.as_deref() == Some("mx.ee.test")));
    for line in [
        "DNSSEC             MX secure, addresses secure",
        "TLSA check         3 1 1 ",
        ": matches the presented certificate",
    ] {
        assert!(ee.report.contains(line), "{line}\n{}", ee.report);
    }

    // The first MX's key is wrong: not there, the second MX takes it.
    let rollover = run("rollover.test");
    assert_eq!(tls_note(&rollover), "DANE verified (TLSA usage 3)");
    assert_eq!(tls_messages(&hops.a, "rollover.test"), 0);
    assert_eq!(tls_messages(&hops.b, "rollover.test"), 1);

    // The only MX's key is wrong: the mail waits, nothing was sent.
    let wrong = run("wrongkey.test");
    assert_deferred_naming_dane(&wrong, "4.7.5");
    assert_eq!(wrong.word, "failed");
    assert_eq!(tls_messages(&hops.a, "wrongkey.test"), 0);
    assert!(
        wrong
            .report
            .contains("does not match the presented certificate"),
        "{}",
        wrong.report
    );

    // A bogus TLSA answer makes the host unusable, never "no DANE".
    let before = hops.a.sessions().len();
    let bogus = run("bogustlsa.test");
    assert_deferred_naming_dane(&bogus, "4.7.5");
    assert_eq!(bogus.word, "host-unusable");
    assert_eq!(
        hops.a.sessions().len(),
        before,
        "no connection to an unusable host"
    );

    // A bogus MX answer: the domain waits, its A record is not used.
    let mx = run("bogusmx.test");
    assert_deferred_naming_dane(&mx, "4.7.5");
    assert_eq!(mx.word, "mx-bogus");
    assert_eq!(plain_messages(&hops.d, "bogusmx.test"), 0);

    // Insecure MX, or TLSA securely denied: opportunistic as today.
    for (domain, word) in [("insecure.test", "insecure"), ("denied.test", "none")] {
        let cell = run(domain);
        assert!(
            matches!(cell.delivery, Fate::Plaintext(_)),
            "{:?}",
            cell.delivery
        );
        assert_eq!(cell.word, word, "{domain}");
    }
    assert_eq!(plain_messages(&hops.d, "insecure.test"), 1);
    assert_eq!(plain_messages(&hops.c, "denied.test"), 1);

    // TLSA published, no STARTTLS: no plaintext, not a byte of mail; nor
    // does the plaintext connection denied.test left open to that server
    // carry it (kept connections serve only mail under their own policy).
    let stripped = run("nostarttls.test");
    assert_deferred_naming_dane(&stripped, "4.7.5");
    assert_eq!(plain_messages(&hops.c, "nostarttls.test"), 0);

    // Only usage 0/1 records: TLS, unauthenticated.
    let encrypt = run("encrypt.test");
    assert_eq!(
        tls_note(&encrypt),
        "DANE encrypt-only (no usable TLSA record)"
    );
    assert_eq!(encrypt.word, "encrypt-only");
    assert_eq!(tls_messages(&hops.b, "encrypt.test"), 1);

    // tls = "dane" where DANE does not apply: deferred, nothing sent.
    let required = run("required.test");
    assert_deferred_naming_dane(&required, "4.7.4");
    assert_eq!(required.word, "required-missing");
    assert_eq!(tls_messages(&hops.b, "required.test"), 0);

    // verify-host keeps its own check: the TLSA records would match, the
    // self-signed certificate still fails verify-host.
    let verify = run("verifyhost.test");
    match &verify.delivery {
        Fate::Deferred { reason, .. } => assert!(
            reason.contains("not trusted") && !reason.contains("DANE"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(verify.word, "off");
}

#[test]
fn dane_off_delivers_as_before() {
    let world = World::new(false);
    let cell = world.run("wrongkey.test");
    assert_eq!(cell.word, "off");
    match &cell.delivery {
        Fate::Tls { note, .. } => assert!(note.starts_with("untrusted"), "{note}"),
        other => panic!("{other:?}\n{}", cell.report),
    }
    assert_eq!(tls_messages(&world.hops.a, "wrongkey.test"), 1);
}

/// Behind name servers that cannot prove anything (here an unsigned
/// `test.` server that is no root, as a resolver that strips DNSSEC would
/// be): the relay warns at start-up, and mail by MX lookup waits with
/// 4.7.5 naming DANE, never sent unvalidated.
#[test]
fn a_resolver_that_cannot_validate_is_named_at_start_up_and_mail_waits() {
    let dns = DnsServer::start(MAIL_AND_SENDER_ZONE);
    let next_hop = Receiver::start("127.0.0.2:0".parse().expect("address"));
    let config = mx_config(next_hop.addr.port(), dns.addr).replace("dnssec = false\n", "");
    let relay = Relay::start_with(&config);
    relay.wait_for_log(
        "DNSSEC validation fails through the configured name servers",
        1,
    );
    submit(
        relay.smtp,
        "alice@sender.test",
        &["bob@b.test"],
        "Subject: x\r\n\r\nhi\r\n",
    );
    let id = relay.expect_spooled(1)[0].0.clone();
    let state = relay.wait_for_state(&id, "an attempt", |s| s.attempts >= 1);
    let bob = &state.recipients[0];
    assert_eq!(
        bob.code.map(|c| c.to_string()).as_deref(),
        Some("4.7.5"),
        "{bob:?}"
    );
    assert!(
        bob.reason.as_deref().unwrap_or("").contains("DANE"),
        "{bob:?}"
    );
    assert_eq!(next_hop.seen().connections, 0);
}
