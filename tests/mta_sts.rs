//! MTA-STS in delivery (issue 16), in process and over real sockets: the
//! test DNS serves the `_mta-sts` TXT records, MX and address records; a
//! rustls HTTPS server serves the policy files (a test CA, trusted by
//! `[mta_sts] ca_file`, on `[mta_sts] https_port`); TLS receivers on
//! 127.0.0.2–4 take the mail. What the receivers saw, the verdicts, the
//! events told to the transit store and probe's lines are the proof.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tlsrelay::config::Config;
use tlsrelay::dns::Dns;
use tlsrelay::outbound::deliver::{Deliverer, RecipientOutcome, Settings};
use tlsrelay::outbound::memory::TlsMemory;
use tlsrelay::outbound::memory_file::system_clock;
use tlsrelay::outbound::outcome::Verdict;
use tlsrelay::transit::{Event, Method, PolicyType, ResultType, Sink};

use support::ca::{Key, Spec, TestCa};
use support::dns::DnsServer;
use support::prediction::probe_then_deliver;
use support::rustls_policy::{Answer, PolicyServer};
use support::tls_receiver::{AfterTls, TlsReceiver};

const VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The transit events delivery told.
#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl Sink for Recorder {
    fn record(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    fn of(&self, domain: &str) -> Vec<Event> {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|e| e.domain == domain)
            .cloned()
            .collect()
    }
}

fn enforce(mx: &[&str]) -> String {
    policy("enforce", mx)
}

fn policy(mode: &str, mx: &[&str]) -> String {
    let mx: String = mx.iter().map(|m| format!("mx: {m}\r\n")).collect();
    format!("version: STSv1\r\nmode: {mode}\r\n{mx}max_age: 86400\r\n")
}

/// Three receivers sharing one port: .2 with a CA certificate naming the
/// good MX hosts, .3 with one naming the rogue host, .4 with one naming
/// nothing the mail is for.
fn receivers(ca: &TestCa) -> (u16, [TlsReceiver; 3]) {
    for _ in 0..50 {
        let first = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        let port = first.local_addr().unwrap().port();
        let (Ok(second), Ok(third)) = (
            TcpListener::bind(("127.0.0.3", port)),
            TcpListener::bind(("127.0.0.4", port)),
        ) else {
            continue;
        };
        let serve = |listener, names: &[&str]| {
            let leaf = ca.leaf(&Spec::new(names, Key::P256));
            TlsReceiver::serving(
                listener,
                &leaf.cert_pem,
                &leaf.key_pem,
                VERSIONS,
                AfterTls::Serve,
            )
        };
        let good = serve(first, &["mx.enf.test", "mx.cache.test"]);
        let rogue = serve(second, &["rogue.enf.test"]);
        let wrong = serve(third, &["wrong.example"]);
        return (port, [good, rogue, wrong]);
    }
    panic!("no port free on 127.0.0.2-4");
}

/// The zone: each domain publishes `_mta-sts` (id 1 unless given), its
/// policy host on 127.0.0.1 and one MX; `enf.test` a rogue MX first.
fn zone() -> String {
    let mut zone = String::from("enf.test. MX 5 rogue.enf.test.\nrogue.enf.test. A 127.0.0.3\n");
    let domains = [
        ("enf", "127.0.0.2", "1"),
        ("bad", "127.0.0.4", "1"),
        ("tst", "127.0.0.4", "1"),
        ("cache", "127.0.0.2", "7"),
        ("idc", "127.0.0.4", "new2"),
        ("nf", "127.0.0.4", "1"),
        ("redir", "127.0.0.4", "1"),
        ("ct", "127.0.0.4", "1"),
        ("big", "127.0.0.4", "1"),
        ("mal", "127.0.0.4", "1"),
        ("none", "127.0.0.4", "1"),
        ("down", "127.0.0.2", "1"),
    ];
    for (name, ip, id) in domains {
        zone.push_str(&format!(
            "{name}.test. MX 10 mx.{name}.test.\nmx.{name}.test. A {ip}\n\
             _mta-sts.{name}.test. TXT \"v=STSv1; id={id};\"\nmta-sts.{name}.test. A 127.0.0.1\n"
        ));
    }
    zone
}

struct World {
    dir: tempfile::TempDir,
    dns: DnsServer,
    policies: PolicyServer,
    mx_port: u16,
    receivers: [TlsReceiver; 3],
    runtime: tokio::runtime::Runtime,
}

impl World {
    fn new() -> World {
        let ca = TestCa::root("MTA-STS test CA", Key::P256);
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        let hosts: Vec<String> = [
            "enf", "bad", "tst", "cache", "idc", "nf", "redir", "ct", "big", "mal", "none", "down",
        ]
        .iter()
        .map(|d| format!("mta-sts.{d}.test"))
        .collect();
        let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let leaf = ca.leaf(&Spec::new(&names, Key::P256));
        let policies = PolicyServer::start(&leaf.cert_pem, &leaf.key_pem);
        let (mx_port, receivers) = receivers(&ca);
        World {
            dns: DnsServer::start(&zone()),
            policies,
            mx_port,
            receivers,
            dir,
            runtime: tokio::runtime::Runtime::new().expect("runtime"),
        }
    }

    /// A deliverer as the relay makes one at start (a new one = a restart).
    fn deliverer(&self, sink: Arc<Recorder>) -> Deliverer<Dns> {
        let dir = self.dir.path();
        let text = format!(
            "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"{}\"\n\
             [delivery]\nmx_port = {}\nconnect_timeout = \"3s\"\n\
             {}\
             [mta_sts]\nhttps_port = {}\nca_file = \"{}\"\nfetch_timeout = \"3s\"\n",
            dir.join("spool").display(),
            self.mx_port,
            self.dns.dns_section(),
            self.policies.addr.port(),
            dir.join("ca.pem").display(),
        );
        let config = Config::parse(&dir.join("relay.toml"), text).unwrap_or_else(|e| panic!("{e}"));
        let dns = Dns::new(&config.dns).expect("dns");
        let settings = Settings::new(&config, dns, None).expect("settings");
        let memory = TlsMemory::reader(dir, Duration::from_secs(3600), system_clock());
        Deliverer::recording(settings, Arc::new(memory), sink)
    }

    /// Probe's report and one delivery of a message to `domain`.
    fn send(&self, deliverer: &Deliverer<Dns>, domain: &str) -> (String, RecipientOutcome) {
        let content = format!("Subject: to {domain}\r\n\r\nMTA-STS case {domain}\r\n");
        let (report, outcome) = self.runtime.block_on(probe_then_deliver(
            deliverer,
            domain,
            &format!("bob@{domain}"),
            &content,
        ));
        (report.text, outcome)
    }

    fn taken(&self, receiver: usize, domain: &str) -> usize {
        self.receivers[receiver].taken(&format!("MTA-STS case {domain}"))
    }

    fn serve(&self, domain: &str, answer: Option<Answer>) {
        self.policies.set(&format!("mta-sts.{domain}"), answer);
    }
}

fn assert_delivered(outcome: &RecipientOutcome, report: &str) {
    assert!(
        matches!(outcome.verdict, Verdict::Delivered { .. }),
        "{:?}\n{report}",
        outcome.verdict
    );
}

#[test]
fn enforce_testing_and_failed_fetches() {
    let world = World::new();
    let sink = Arc::new(Recorder::default());
    let deliverer = world.deliverer(sink.clone());
    world.serve("enf.test", Some(Answer::policy(&enforce(&["mx.enf.test"]))));
    world.serve("bad.test", Some(Answer::policy(&enforce(&["*.bad.test"]))));
    world.serve(
        "tst.test",
        Some(Answer::policy(&policy("testing", &["mx.tst.test"]))),
    );

    // Enforce: the rogue MX (preferred) is not contacted; the matching one
    // takes the mail over verified TLS.
    let (report, outcome) = world.send(&deliverer, "enf.test");
    assert_delivered(&outcome, &report);
    assert_eq!(world.taken(0, "enf.test"), 1, "{report}");
    assert!(
        world.receivers[1].sessions().is_empty(),
        "the rogue MX was contacted"
    );
    for line in [
        "MTA-STS record: v=STSv1; id=1;",
        "MTA-STS policy: mode=enforce max_age=86400 mx=mx.enf.test",
        "MTA-STS mx rogue.enf.test: does not match",
        "MTA-STS mx mx.enf.test: matches",
        "MTA-STS outcome sts=enforced",
    ] {
        assert!(report.contains(line), "{line:?} missing in\n{report}");
    }
    let events = sink.of("enf.test");
    let sessions: u32 = events.iter().map(|e| e.sessions).sum();
    assert_eq!(sessions, 2, "{events:#?}");
    assert!(events.iter().all(|e| e.policy.kind == PolicyType::Sts));
    let mismatch = events
        .iter()
        .find(|e| e.mx_host == "rogue.enf.test")
        .expect("rogue");
    assert_eq!(mismatch.method, Method::Deferred);
    assert!(mismatch.policy_deferred);
    let good = events
        .iter()
        .find(|e| e.mx_host == "mx.enf.test")
        .expect("good");
    assert_eq!(
        (good.method, good.messages, good.failure.clone()),
        (Method::MtaSts, 1, None)
    );
    assert_eq!(good.policy.mx_host, ["mx.enf.test"]);

    // Enforce, wrong certificate name: deferred 4.7.5 naming MTA-STS, no mail.
    let (report, outcome) = world.send(&deliverer, "bad.test");
    match &outcome.verdict {
        Verdict::Deferred { status, reason, .. } => {
            assert_eq!(status.to_string(), "4.7.5", "{reason}");
            assert!(reason.contains("MTA-STS (enforce)"), "{reason}");
        }
        other => panic!("not deferred: {other:?}\n{report}"),
    }
    assert_eq!(world.taken(2, "bad.test"), 0);
    assert!(report.contains("MTA-STS outcome sts=failed"), "{report}");
    let events = sink.of("bad.test");
    assert_eq!(events.len(), 1, "{events:#?}");
    let failure = events[0].failure.as_ref().map(|f| f.result_type);
    assert_eq!(failure, Some(ResultType::CertificateHostMismatch));
    assert_eq!(events[0].method, Method::Deferred);

    // Testing, same failure: delivered, the failure recorded.
    let (report, outcome) = world.send(&deliverer, "tst.test");
    assert_delivered(&outcome, &report);
    assert_eq!(world.taken(2, "tst.test"), 1);
    assert!(
        report.contains("MTA-STS outcome sts=testing-failed"),
        "{report}"
    );
    let events = sink.of("tst.test");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].messages, 1);
    assert_eq!(events[0].method, Method::Tls13Unverified);
    let failure = events[0].failure.as_ref().map(|f| f.result_type);
    assert_eq!(failure, Some(ResultType::CertificateHostMismatch));

    // A policy that cannot be had is no policy; TLS-RPT hears why.
    let oversize = "x".repeat(70 * 1024);
    let cases = [
        ("nf.test", None, ResultType::StsPolicyFetchError),
        (
            "redir.test",
            Some(Answer {
                status: "301 Moved Permanently",
                ..Answer::policy(&enforce(&["mx.redir.test"]))
            }),
            ResultType::StsPolicyFetchError,
        ),
        (
            "ct.test",
            Some(Answer {
                content_type: "text/html",
                ..Answer::policy(&enforce(&["mx.ct.test"]))
            }),
            ResultType::StsPolicyFetchError,
        ),
        (
            "big.test",
            Some(Answer::policy(&oversize)),
            ResultType::StsPolicyFetchError,
        ),
        (
            "mal.test",
            Some(Answer::policy("version: STSv1\r\nmode: enforce\r\n")),
            ResultType::StsPolicyInvalid,
        ),
    ];
    for (domain, answer, kind) in cases {
        world.serve(domain, answer);
        // A deliverer of its own: no kept connection to 127.0.0.4, so
        // each case makes a session.
        let deliverer = world.deliverer(sink.clone());
        let (report, outcome) = world.send(&deliverer, domain);
        assert_delivered(&outcome, &report);
        assert_eq!(world.taken(2, domain), 1, "{domain}");
        let events = sink.of(domain);
        assert_eq!(events.len(), 1, "{domain}: {events:#?}");
        assert_eq!(events[0].policy.kind, PolicyType::Sts, "{domain}");
        let failure = events[0].failure.as_ref().map(|f| f.result_type);
        assert_eq!(failure, Some(kind), "{domain}");
        assert!(report.contains("could not be had"), "{domain}\n{report}");
    }
    assert!(!world.dir.path().join("spool/mta-sts/nf.test").exists());
}

#[test]
fn the_cache_outlives_restarts_and_failed_refetches() {
    let world = World::new();
    let sink = Arc::new(Recorder::default());
    world.serve(
        "cache.test",
        Some(Answer::policy(&enforce(&["mx.cache.test"]))),
    );
    let (report, outcome) = world.send(&world.deliverer(sink.clone()), "cache.test");
    assert_delivered(&outcome, &report);
    assert!(report.contains("(fetched now)"), "{report}");
    let file = world.dir.path().join("spool/mta-sts/cache.test");
    assert!(file.exists(), "no cache file");

    // A restart, the policy server now refusing: the cached policy rules.
    world.serve("cache.test", None);
    let before = world.policies.requests("mta-sts.cache.test");
    let (report, outcome) = world.send(&world.deliverer(sink.clone()), "cache.test");
    assert_delivered(&outcome, &report);
    assert!(report.contains("mode=enforce"), "{report}");
    assert!(report.contains("cached, age"), "{report}");
    assert_eq!(
        world.policies.requests("mta-sts.cache.test"),
        before,
        "refetched"
    );

    // The TXT id changed and the refetch fails: the unexpired cached
    // policy stays in force (RFC 8461 §5.1), so the wrong-name MX waits.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cached = format!(
        "id: old1\nfetched: {}\n\n{}",
        now - 60,
        enforce(&["mx.idc.test"])
    );
    write_cache(world.dir.path(), "idc.test", &cached);
    let (report, outcome) = world.send(&world.deliverer(sink), "idc.test");
    assert!(report.contains("refetch failed"), "{report}");
    match &outcome.verdict {
        Verdict::Deferred { status, reason, .. } => {
            assert_eq!(status.to_string(), "4.7.5");
            assert!(reason.contains("MTA-STS"), "{reason}");
        }
        other => panic!("not deferred: {other:?}\n{report}"),
    }
    assert_eq!(world.taken(2, "idc.test"), 0);
}

#[test]
fn mode_none_is_cached_and_a_failed_fetch_is_not_repeated_at_once() {
    let world = World::new();
    let sink = Arc::new(Recorder::default());
    let deliverer = world.deliverer(sink.clone());
    // `mode: none`: fetched once, then cached like any policy.
    let none = "version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n";
    world.serve("none.test", Some(Answer::policy(none)));
    for _ in 0..3 {
        let (report, outcome) = world.send(&deliverer, "none.test");
        assert_delivered(&outcome, &report);
    }
    assert_eq!(
        world.policies.requests("mta-sts.none.test"),
        1,
        "fetched again"
    );
    assert!(world.dir.path().join("spool/mta-sts/none.test").exists());
    // A policy server that fails: tried once, then not again for a while,
    // each session still counted as a fetch error for TLS-RPT.
    world.serve("down.test", None);
    for _ in 0..3 {
        let (report, outcome) = world.send(&deliverer, "down.test");
        assert_delivered(&outcome, &report);
    }
    assert_eq!(
        world.policies.requests("mta-sts.down.test"),
        1,
        "fetched again"
    );
    let failures: Vec<_> = (sink.of("down.test").iter())
        .filter(|e| e.sessions == 1)
        .map(|e| e.failure.as_ref().map(|f| f.result_type))
        .collect();
    // One session (the next messages go over the kept connection).
    assert_eq!(failures, vec![Some(ResultType::StsPolicyFetchError)]);
}

fn write_cache(dir: &Path, domain: &str, text: &str) {
    let folder = dir.join("spool/mta-sts");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(domain), text).unwrap();
}
