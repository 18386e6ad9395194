//! REQUIRETLS (RFC 8689, issue 17) in the delivery path, in process: the
//! relay's own deliverer, a resolver double answering as a validating
//! resolver would, and real TLS receivers on 127.0.0.2 … sharing
//! `[delivery] mx_port`. A flagged message goes only to an authenticated
//! hop with verified TLS that offers REQUIRETLS, passing the parameter on;
//! otherwise it fails with 5.7.30 and the refused hops heard nothing of
//! it. `TLS-Required: No` lifts DANE. The same rules against Postfix,
//! OpenSSL receivers and an attacker are in tests/real_peers/requiretls*.

mod support;

use std::net::{IpAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tlsrelay::config::Config;
use tlsrelay::outbound::dane::TlsaAnswer;
use tlsrelay::outbound::deliver::{Deliverer, RecipientOutcome, Settings};
use tlsrelay::outbound::memory::TlsMemory;
use tlsrelay::outbound::memory_file::system_clock;
use tlsrelay::outbound::probe::{predict_for, Prediction};
use tlsrelay::outbound::route::MxAnswer;
use tlsrelay::queue::body::Body;
use tlsrelay::queue::delivery::Verdict;
use tlsrelay::queue::envelope::{Envelope, Recipient};

use support::receiver::{listeners_on_one_port, Receiver};
use support::tls_receiver::{tlsa_3_1_1, AfterTls, TlsReceiver};
use support::validated_dns::{insecure, secure, SignedDns};

/// On one port: DANE-authenticated TLS offering REQUIRETLS on 127.0.0.2,
/// DANE-authenticated TLS without it on .3, no STARTTLS on .4.
struct Hops {
    with: TlsReceiver,
    without: TlsReceiver,
    plain: Receiver,
    port: u16,
}

fn hops() -> Hops {
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let listeners = listeners_on_one_port(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    let port = listeners[0].local_addr().expect("local_addr").port();
    let [a, b, c]: [TcpListener; 3] = listeners.try_into().expect("three listeners");
    let name = "not-the-mx.example";
    Hops {
        with: TlsReceiver::on(a, name, &versions, AfterTls::ServeRequireTls),
        without: TlsReceiver::on(b, name, &versions, AfterTls::Serve),
        plain: Receiver::on(c),
        port,
    }
}

impl Hops {
    /// The MAIL and RCPT lines the REQUIRETLS-offering server took.
    fn mail_lines(&self) -> Vec<String> {
        let sessions = self.with.sessions();
        sessions.into_iter().flat_map(|s| s.envelope).collect()
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("IP")
}

fn one_mx(host: &str) -> MxAnswer {
    MxAnswer::Hosts(vec![(10, format!("{host}."))])
}

/// One domain per cell; every host authenticated by a `3 1 1` record
/// unless said otherwise.
fn zone(hops: &Hops) -> SignedDns {
    let mut dns = SignedDns::default();
    let with = TlsaAnswer::Records(vec![tlsa_3_1_1(&hops.with.cert)]);
    let without = TlsaAnswer::Records(vec![tlsa_3_1_1(&hops.without.cert)]);
    let mut usage1 = tlsa_3_1_1(&hops.with.cert);
    usage1.usage = 1;
    let cells: [(&'static str, &'static str, &str, Option<TlsaAnswer>); 8] = [
        ("ok.test", "mx.ok.test", "127.0.0.2", Some(with.clone())),
        (
            "lacking.test",
            "mx.lacking.test",
            "127.0.0.3",
            Some(without),
        ),
        ("plain.test", "mx.plain.test", "127.0.0.4", None),
        (
            "encrypt.test",
            "mx.encrypt.test",
            "127.0.0.2",
            Some(TlsaAnswer::Records(vec![usage1])),
        ),
        (
            "unsigned.test",
            "mx.unsigned.test",
            "127.0.0.2",
            Some(with.clone()),
        ),
        ("off.test", "mx.off.test", "127.0.0.4", None),
        (
            "lifted.test",
            "mx.lifted.test",
            "127.0.0.4",
            Some(with.clone()),
        ),
        ("down.test", "mx.down.test", "127.0.0.5", Some(with)),
    ];
    for (domain, mx, addr, tlsa) in cells {
        dns.addresses.insert(mx, secure(vec![ip(addr)]));
        if let Some(tlsa) = tlsa {
            dns.tlsa.insert(mx, tlsa);
        }
        let answer = match domain {
            "unsigned.test" => insecure(one_mx(mx)),
            _ => secure(one_mx(mx)),
        };
        dns.mx.insert(domain, answer);
    }
    dns
}

fn deliverer(dir: &Path, port: u16, dns: SignedDns) -> Deliverer<SignedDns> {
    let text = format!(
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"{}\"\n\
         [delivery]\nmx_port = {port}\nconnect_timeout = \"3s\"\n\
         [dns]\nnameservers = [\"127.0.0.1:1\"]\n\
         [[outbound]]\nname = \"internal\"\nrecipient_domains = [\"off.test\"]\nrequiretls = \"off\"\n",
        dir.display(),
    );
    let config = Config::parse(&dir.join("relay.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    let settings = Settings::new(&config, dns, None).expect("settings");
    let memory = TlsMemory::reader(dir, Duration::from_secs(3600), system_clock());
    Deliverer::with_settings(settings, Arc::new(memory))
}

/// The receivers, the spool folder, and a deliverer routing to them.
fn lab() -> (Hops, tempfile::TempDir, Deliverer<SignedDns>) {
    let hops = hops();
    let dir = tempfile::tempdir().expect("tempdir");
    let deliverer = deliverer(dir.path(), hops.port, zone(&hops));
    (hops, dir, deliverer)
}

async fn send(
    deliverer: &Deliverer<SignedDns>,
    domain: &str,
    flagged: bool,
    headers: &str,
) -> RecipientOutcome {
    let recipient = Recipient {
        address: format!("bob@{domain}"),
        orcpt: None,
        notify: None,
    };
    let envelope = Envelope {
        sender: "alice@relay.example.test".into(),
        recipients: vec![recipient.clone()],
        requiretls: flagged,
        ..Envelope::default()
    };
    let content = format!("{headers}Subject: to {domain}\r\n\r\nsecret body for {domain}\r\n");
    let mut outcomes = deliverer
        .attempt(
            domain,
            &envelope,
            &Body::in_memory(content.into_bytes()),
            &[&recipient],
        )
        .await;
    outcomes.remove(0)
}

/// Failed with 5.7.30, the reason naming REQUIRETLS and `why`.
fn assert_returned(outcome: &RecipientOutcome, why: &str) {
    match &outcome.verdict {
        Verdict::Failed { status, reason, .. } => {
            assert_eq!(status.to_string(), "5.7.30", "{reason}");
            assert!(reason.starts_with("REQUIRETLS:"), "{reason}");
            assert!(reason.contains(why), "{reason}");
        }
        other => panic!("not returned: {other:?}"),
    }
}

fn assert_delivered(outcome: &RecipientOutcome) {
    assert!(
        matches!(outcome.verdict, Verdict::Delivered { .. }),
        "{:?}",
        outcome.verdict
    );
}

/// Nothing of the cell's message at any receiver.
fn assert_unseen(hops: &Hops, domain: &str) {
    let body = format!("secret body for {domain}");
    for session in hops.with.sessions().iter().chain(&hops.without.sessions()) {
        assert!(
            !session.messages.iter().any(|m| m.contains(&body)),
            "{session:?}"
        );
        assert!(
            !session.envelope.iter().any(|l| l.contains(domain)),
            "{session:?}"
        );
    }
    let seen = hops.plain.seen();
    assert!(
        !seen
            .transactions
            .iter()
            .any(|t| t.rcpt_to.iter().any(|r| r.contains(domain))),
        "{:?}",
        seen.transactions
    );
}

#[tokio::test]
async fn a_flagged_message_goes_only_where_requiretls_holds() {
    let (hops, _dir, deliverer) = lab();

    // DNSSEC MX, DANE-verified, REQUIRETLS offered: delivered, passed on.
    assert_delivered(&send(&deliverer, "ok.test", true, "").await);
    let mail = hops.mail_lines();
    assert!(
        mail.iter()
            .any(|l| l.starts_with("MAIL FROM:<alice@relay.example.test>")
                && l.ends_with(" REQUIRETLS")),
        "{mail:?}"
    );
    // Unflagged mail to the same server: no parameter.
    assert_delivered(&send(&deliverer, "ok.test", false, "").await);
    let mail = hops.mail_lines();
    assert!(
        mail.iter()
            .any(|l| l.starts_with("MAIL FROM:") && !l.contains("REQUIRETLS")),
        "{mail:?}"
    );

    // Verified, but REQUIRETLS not offered: QUIT before MAIL, returned.
    assert_returned(
        &send(&deliverer, "lacking.test", true, "").await,
        "does not offer REQUIRETLS",
    );
    // No STARTTLS at all: never plaintext, returned.
    assert_returned(&send(&deliverer, "plain.test", true, "").await, "STARTTLS");
    // DANE encrypt-only (no usable TLSA record) is not verified TLS.
    assert_returned(
        &send(&deliverer, "encrypt.test", true, "").await,
        "not verified",
    );
    // An unsigned MX answer: not contacted at all.
    let before = hops.with.sessions().len();
    assert_returned(
        &send(&deliverer, "unsigned.test", true, "").await,
        "not authenticated",
    );
    assert_eq!(
        hops.with.sessions().len(),
        before,
        "a connection to an unauthenticated MX"
    );
    for domain in [
        "lacking.test",
        "plain.test",
        "encrypt.test",
        "unsigned.test",
    ] {
        assert_unseen(&hops, domain);
    }
}

#[tokio::test]
async fn off_lifted_and_unreachable() {
    let (hops, _dir, deliverer) = lab();

    // `requiretls = "off"`: the flag is ignored for this connector.
    let off = send(&deliverer, "off.test", true, "").await;
    assert_delivered(&off);
    assert!(
        off.tls
            .as_deref()
            .is_some_and(|t| t.starts_with("plaintext")),
        "{off:?}"
    );
    let seen = hops.plain.seen();
    let rcpts: Vec<&String> = seen.delivered().iter().flat_map(|t| &t.rcpt_to).collect();
    assert!(
        rcpts.iter().any(|r| r.contains("bob@off.test")),
        "{rcpts:?}"
    );

    // `TLS-Required: No` lifts DANE: its TLSA records name another
    // server, yet the plaintext-only MX gets the mail.
    let lifted = send(&deliverer, "lifted.test", false, "TLS-Required: No\r\n").await;
    assert_delivered(&lifted);
    // The same message without the header waits under DANE.
    let kept = send(&deliverer, "lifted.test", false, "").await;
    assert!(matches!(kept.verdict, Verdict::Deferred { .. }), "{kept:?}");
    // A flagged message ignores the header (RFC 8689 §4.1).
    assert_returned(
        &send(&deliverer, "lifted.test", true, "TLS-Required: No\r\n").await,
        "REQUIRETLS",
    );

    // An MX that does not answer: the message waits, it is not returned.
    let down = send(&deliverer, "down.test", true, "").await;
    assert!(matches!(down.verdict, Verdict::Deferred { .. }), "{down:?}");
}

#[tokio::test]
async fn probe_requiretls_predicts_what_delivery_does() {
    let (_hops, _dir, deliverer) = lab();
    let cases = [
        ("ok.test", "deliver"),
        ("lacking.test", "return"),
        ("plain.test", "return"),
        ("encrypt.test", "return"),
        ("unsigned.test", "return"),
        ("off.test", "deliver"),
        ("down.test", "wait"),
    ];
    for (domain, expected) in cases {
        let parsed = domain.parse().expect("domain");
        let report = predict_for(&deliverer, &parsed, None, true).await;
        let predicted = match &report.prediction {
            Prediction::Deliver { .. } => "deliver",
            Prediction::Bounce { status, .. } if status.to_string() == "5.7.30" => "return",
            Prediction::Wait { .. } => "wait",
            Prediction::Bounce { .. } => "bounce",
        };
        let outcome = send(&deliverer, domain, true, "").await;
        let delivered = match &outcome.verdict {
            Verdict::Delivered { .. } => "deliver",
            Verdict::Failed { status, .. } if status.to_string() == "5.7.30" => "return",
            Verdict::Deferred { .. } => "wait",
            Verdict::Failed { .. } => "bounce",
        };
        assert_eq!(
            (predicted, delivered),
            (expected, expected),
            "{domain}\n{}",
            report.text
        );
        assert!(
            report.text.contains("REQUIRETLS   required") || domain == "off.test",
            "{}",
            report.text
        );
    }
}
