//! Our DNSSEC-validating lookups against a real signed tree (nsd serving
//! zones that ldns signed for this run, `support::signed_dns`): every
//! answer the DANE table of DESIGN.md §5b needs — secure, insecure, bogus,
//! secure denial, failed — for MX, A and TLSA, read by the same
//! `outcome` delivery will ask; and the caching of those answers.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tlsrelay::config::Config;
use tlsrelay::dns::Dns;
use tlsrelay::outbound::dane::{
    outcome, FailKind, Fault, HostDane, NoDaneWhy, Security, Status, TlsaAnswer, Validated,
};
use tlsrelay::outbound::route::{MxAnswer, Resolve};
use tlsrelay::tls::dane::Tlsa;

use super::support::ca::{Key, Spec, TestCa};
use super::support::dns::Silent;
use super::support::signed_dns::{Kind, SignedDns};
use super::support::{arg, tlsrelay as run_tlsrelay, write};

/// This run's certificates and the TLSA records they make.
struct Certs {
    _dir: tempfile::TempDir,
    /// `3 1 1` of the MX's key, as `ldns-dane` computes it.
    ee: Tlsa,
    /// `2 1 1` of the CA's key.
    ta: Tlsa,
}

fn certs() -> Certs {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::root("dane test CA", Key::P256);
    let leaf = ca.leaf(&Spec::new(&["mx.secure.test"], Key::P256));
    let pem = write(dir.path(), "mx.pem", &leaf.cert_pem);
    let ee = ldns_dane_record(&pem, &[]);
    // cert-info prints the same record an administrator would publish.
    let report = run_tlsrelay(&["cert-info", arg(&pem), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).expect("JSON");
    assert_eq!(report["certificates"][0]["tlsa_3_1_1"], ee.to_string());
    let ca_pem = write(dir.path(), "ca.pem", ca.pem());
    // -n: the CA certificate does not name the MX; its key is what counts.
    let mut ta = ldns_dane_record(&ca_pem, &["-n"]);
    ta.usage = 2;
    Certs { _dir: dir, ee, ta }
}

/// `ldns-dane -c CERT create HOST 25 3 1 1`: the last four fields of its line.
fn ldns_dane_record(pem: &Path, options: &[&str]) -> Tlsa {
    let out = super::run_peer(std::process::Command::new("ldns-dane").args(options).args([
        "-c",
        arg(pem),
        "create",
        "mx.secure.test",
        "25",
        "3",
        "1",
        "1",
    ]));
    let fields: Vec<&str> = out.split_whitespace().collect();
    let tail = fields.len().checked_sub(4).expect("a TLSA line");
    fields[tail..]
        .join(" ")
        .parse()
        .expect("ldns-dane's record")
}

fn zones(certs: &Certs) -> SignedDns {
    let mail = format!(
        "@ MX 10 mx\nmx A 127.0.0.1\n_25._tcp.mx TLSA {}\n_25._tcp.mx TLSA {}\n",
        certs.ee, certs.ta
    );
    let secure = format!(
        "{mail}mx2 A 127.0.0.2\nnodata A 127.0.0.3\n_25._tcp.nodata TXT \"no TLSA here\"\n\
         usage1 A 127.0.0.4\n_25._tcp.usage1 TLSA 1 1 1 {}\n",
        certs.ee.to_string().split(' ').nth(3).expect("data")
    );
    SignedDns::builder()
        .zone("secure.test", Kind::Secure, &secure)
        .zone("plain.test", Kind::Insecure, &mail)
        .zone("bogus.test", Kind::Bogus, &mail)
        .zone("broken.test", Kind::BrokenTlsa, &mail)
        .start()
}

/// Our resolver from a `[dns]` section, as the relay builds it.
pub(crate) fn dns(nameserver: SocketAddr, anchor: &Path, extra: &str) -> Dns {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("relay.toml");
    let text = format!(
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:2525\"]\n\
         [dns]\nnameservers = [\"{nameserver}\"]\ntimeout = \"1s\"\n\
         trust_anchor = \"{}\"\n{extra}",
        anchor.display()
    );
    let config = Config::parse(&file, text).unwrap_or_else(|e| panic!("{e}"));
    Dns::new(&config.dns).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// MX, address and TLSA statuses of `domain`'s `mx` host, and the outcome.
async fn host(dns: &Dns, domain: &str) -> (Status, Status, TlsaAnswer, HostDane) {
    let mx = Status::of(&dns.mx_checked(domain).await);
    let addresses = Status::of(&dns.addresses_checked(&format!("mx.{domain}")).await);
    let tlsa = dns.tlsa(&format!("mx.{domain}"), 25).await;
    let decided = outcome(mx, addresses, Some(&tlsa));
    (mx, addresses, tlsa, decided)
}

#[test]
#[ignore = "real peers: nsd and ldnsutils; run by .ci/run"]
fn a_signed_zone_is_secure_and_its_tlsa_records_are_this_runs() {
    let certs = certs();
    let tree = zones(&certs);
    let dns = dns(tree.addr, &tree.anchor, "");
    runtime().block_on(async {
        let mx = dns.mx_checked("secure.test").await;
        let hosts = MxAnswer::Hosts(vec![(10, "mx.secure.test.".into())]);
        assert_eq!(
            mx,
            Ok(Validated {
                value: hosts,
                security: Security::Secure
            })
        );
        let addresses = dns.addresses_checked("mx.secure.test").await;
        let value = vec!["127.0.0.1".parse().expect("ip")];
        assert_eq!(
            addresses,
            Ok(Validated {
                value,
                security: Security::Secure
            })
        );

        let (mx, addresses, tlsa, decided) = host(&dns, "secure.test").await;
        assert_eq!((mx, addresses), (Status::Secure, Status::Secure));
        let TlsaAnswer::Records(mut records) = tlsa else {
            panic!("expected secure TLSA records, got {tlsa:?}");
        };
        records.sort_by_key(|r| r.usage);
        assert_eq!(records, vec![certs.ta.clone(), certs.ee.clone()]);
        let HostDane::Authenticate(usable) = decided else {
            panic!("expected authenticated TLS, got {decided:?}");
        };
        assert_eq!(usable.len(), 2);

        // Records present, none usable: encrypt only.
        let tlsa = dns.tlsa("usage1.secure.test", 25).await;
        assert!(
            matches!(&tlsa, TlsaAnswer::Records(r) if r[0].usage == 1),
            "{tlsa:?}"
        );
        assert_eq!(
            outcome(Status::Secure, Status::Secure, Some(&tlsa)),
            HostDane::EncryptOnly
        );
    });
}

#[test]
#[ignore = "real peers: nsd and ldnsutils; run by .ci/run"]
fn no_tlsa_under_a_signed_zone_is_a_secure_denial() {
    let certs = certs();
    let tree = zones(&certs);
    let dns = dns(tree.addr, &tree.anchor, "");
    runtime().block_on(async {
        // NXDOMAIN (no such name) and NODATA (a TXT, no TLSA), both proven by NSEC3.
        for host in ["mx2.secure.test", "nodata.secure.test"] {
            let tlsa = dns.tlsa(host, 25).await;
            assert_eq!(tlsa, TlsaAnswer::SecureDenial, "{host}");
            let decided = outcome(Status::Secure, Status::Secure, Some(&tlsa));
            assert_eq!(decided, HostDane::NoDane(NoDaneWhy::NoTlsa));
        }
        // A name that does not exist at all: MX NXDOMAIN, securely.
        let mx = dns.mx_checked("nothing.secure.test").await;
        let security = Security::Secure;
        assert_eq!(
            mx,
            Ok(Validated {
                value: MxAnswer::NxDomain,
                security
            })
        );
    });
}

#[test]
#[ignore = "real peers: nsd and ldnsutils; run by .ci/run"]
fn an_unsigned_zone_is_insecure_and_gets_no_dane() {
    let certs = certs();
    let tree = zones(&certs);
    let dns = dns(tree.addr, &tree.anchor, "");
    runtime().block_on(async {
        let (mx, addresses, tlsa, decided) = host(&dns, "plain.test").await;
        assert_eq!((mx, addresses), (Status::Insecure, Status::Insecure));
        // The TLSA record exists, but nothing vouches for it.
        assert_eq!(tlsa, TlsaAnswer::Insecure);
        // Nor for its absence: an unsigned NXDOMAIN is no secure denial.
        assert_eq!(dns.tlsa("mx2.plain.test", 25).await, TlsaAnswer::Insecure);
        let mx = dns.mx_checked("nothing.plain.test").await;
        let security = Security::Insecure;
        assert_eq!(
            mx,
            Ok(Validated {
                value: MxAnswer::NxDomain,
                security
            })
        );
        assert_eq!(decided, HostDane::NoDane(NoDaneWhy::InsecureMx));
    });
}

#[test]
#[ignore = "real peers: nsd and ldnsutils; run by .ci/run"]
fn expired_signatures_are_bogus_and_never_read_as_no_dane() {
    let certs = certs();
    let tree = zones(&certs);
    let dns = dns(tree.addr, &tree.anchor, "");
    runtime().block_on(async {
        let (mx, addresses, tlsa, decided) = host(&dns, "bogus.test").await;
        assert_eq!((mx, addresses), (Status::Bogus, Status::Bogus));
        assert!(matches!(tlsa, TlsaAnswer::Bogus(_)), "{tlsa:?}");
        assert!(matches!(decided, HostDane::DeferDomain(_)), "{decided:?}");
        let mx = dns.mx_checked("bogus.test").await;
        assert!(matches!(mx, Err(Fault::Bogus { .. })), "{mx:?}");
        // Today's routing (the plain resolver) is unchanged by DNSSEC.
        let routed = Resolve::mx(&dns, "bogus.test").await;
        assert_eq!(
            routed,
            Ok(MxAnswer::Hosts(vec![(10, "mx.bogus.test.".into())]))
        );

        // Only the TLSA RRset altered, in a secure zone: that host is unusable.
        let (mx, addresses, tlsa, decided) = host(&dns, "broken.test").await;
        assert_eq!((mx, addresses), (Status::Secure, Status::Secure));
        assert!(matches!(tlsa, TlsaAnswer::Bogus(_)), "{tlsa:?}");
        assert!(matches!(decided, HostDane::HostUnusable(_)), "{decided:?}");
    });
}

#[test]
#[ignore = "real peers: nsd and ldnsutils; run by .ci/run"]
fn a_name_server_that_drops_queries_is_a_failure_not_no_dane() {
    let certs = certs();
    let tree = zones(&certs);
    let silent = Silent::start();
    let dns = dns(silent.addr, &tree.anchor, "");
    runtime().block_on(async {
        let started = Instant::now();
        let mx = dns.mx_checked("secure.test").await;
        assert!(
            matches!(
                mx,
                Err(Fault::Failed {
                    kind: FailKind::TimedOut,
                    ..
                })
            ),
            "{mx:?}"
        );
        let addresses = dns.addresses_checked("mx.secure.test").await;
        assert!(
            matches!(addresses, Err(Fault::Failed { .. })),
            "{addresses:?}"
        );
        let tlsa = dns.tlsa("mx.secure.test", 25).await;
        assert!(
            matches!(
                tlsa,
                TlsaAnswer::Failed {
                    kind: FailKind::TimedOut,
                    ..
                }
            ),
            "{tlsa:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "bounded by [dns] timeout"
        );
        let decided = outcome(Status::Secure, Status::Secure, Some(&tlsa));
        assert!(matches!(decided, HostDane::HostUnusable(_)), "{decided:?}");
        let decided = outcome(Status::of(&mx), Status::Secure, None);
        assert!(matches!(decided, HostDane::DeferDomain(_)), "{decided:?}");
    });
}

#[test]
#[ignore = "real peers: nsd and ldnsutils; run by .ci/run"]
fn tlsa_answers_and_denials_are_cached_for_their_ttl() {
    let certs = certs();
    let mut tree = zones(&certs);
    let dns = dns(tree.addr, &tree.anchor, "");
    runtime().block_on(async {
        let records = dns.tlsa("mx.secure.test", 25).await;
        assert!(matches!(records, TlsaAnswer::Records(_)), "{records:?}");
        let denial = dns.tlsa("mx2.secure.test", 25).await;
        assert_eq!(denial, TlsaAnswer::SecureDenial);
        let mx = dns.mx_checked("secure.test").await;

        tree.stop();
        // Asked again within the TTL (300 s): the same answers, no server.
        assert_eq!(dns.tlsa("mx.secure.test", 25).await, records);
        assert_eq!(
            dns.tlsa("mx2.secure.test", 25).await,
            TlsaAnswer::SecureDenial
        );
        assert_eq!(dns.mx_checked("secure.test").await, mx);
        // And the server is really gone: a new question gets no answer.
        let fresh = dns.tlsa("nodata.secure.test", 25).await;
        assert!(matches!(fresh, TlsaAnswer::Failed { .. }), "{fresh:?}");
    });
}

#[test]
#[ignore = "real peers: nsd and ldnsutils; run by .ci/run"]
fn with_dnssec_off_nothing_is_secure() {
    let certs = certs();
    let tree = zones(&certs);
    let dns = dns(tree.addr, &tree.anchor, "dnssec = false\n");
    runtime().block_on(async {
        assert!(!dns.validates());
        let (mx, addresses, tlsa, decided) = host(&dns, "secure.test").await;
        assert_eq!((mx, addresses), (Status::Insecure, Status::Insecure));
        assert_eq!(tlsa, TlsaAnswer::Insecure);
        assert_eq!(decided, HostDane::NoDane(NoDaneWhy::InsecureMx));
    });
}
