//! Issue 15's acceptance matrix: DANE (RFC 7672, DESIGN.md §5b) against
//! real peers, every cell asserted by what the receivers saw.
//!
//! The lab, built afresh on every run inside a network namespace of the
//! test's own (`support::dane_lab::in_namespace`, which says why a
//! thread-level namespace):
//!
//! * nsd serving `test.` (the trust anchor) and one child zone per
//!   destination, signed by ldns for this run (`support::signed_dns`):
//!   secure zones whose TLSA records are made from this run's
//!   certificates, an insecure zone (no DS), a bogus one (expired
//!   signatures), one whose TLSA RRset alone is bogus;
//! * in front of nsd, the name server the relay asks: a forwarder that
//!   swallows the TLSA query of one secure host (`DroppingDns`), so that
//!   lookup times out while the zone's MX and A answers still come;
//! * receivers on one port (`[delivery] mx_port`), each on its own
//!   address: scripted TLS receivers with a self-signed certificate, an
//!   expired one and a CA one naming another host (127.0.0.2, .3, .5), a
//!   private Postfix with a CA certificate that serves its chain
//!   (127.0.0.4), a receiver without STARTTLS (127.0.0.6), and a
//!   STARTTLS-stripping proxy in front of the Postfix (127.0.0.7). Every
//!   one records what it got: the plaintext before STARTTLS, the
//!   envelope, the message, whether over TLS;
//! * tlsrelay processes (`tlsrelay serve`), one per configuration: the
//!   default (DANE on) with the connector-precedence cells; `tls =
//!   "dane"` connectors; `[delivery] dane = false`.
//!
//! Each cell is one message from its own sender (`CELL@sender.test`) to
//! its own recipient, so every trace at every receiver is attributable.
//! All are sent at once; once every message is delivered or attempted
//! (`[queue] retry_intervals = ["1h"]`: one attempt), each cell is
//! checked: where it arrived and over what, that no other receiver saw
//! anything of it (not its sender, not its text), and for deferrals the
//! 4.7.x status with a reason naming DANE in the state file and in `queue
//! show`; the `dane=` word of its last attempt log line; and what `probe
//! DOMAIN` says under the same configuration. Every failure of every cell
//! is reported at once.
//!
//! What the cells assume of the feature is the contract of issue 15's
//! brief: the config keys `[delivery] dane` and `tls = "dane"`; a refused
//! message stays queued with status `4.7.x` and `DANE` in its reason; the
//! attempt log line carries `dane=WORD` (as the JSON field `dane`, or the
//! text `dane=WORD`); `probe` prints the DANE word on a line that says
//! `DANE` and keeps today's `Verdict` line.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rustls::version::{TLS12, TLS13};
use tlsrelay::outbound::dane::{FailKind, Security, TlsaAnswer};
use tlsrelay::queue::state::{DeliveryState, Status};
use tlsrelay::tls::dane::Tlsa;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::support::ca::{self, Issued, Key, Spec, TestCa};
use crate::support::dane_lab::{in_namespace, DroppingDns, StripProxy, TLSA};
use crate::support::openssl_spki_pin;
use crate::support::postfix::{first_received, run_bounded, Postfix, PostfixOptions};
use crate::support::receiver::Receiver;
use crate::support::relay::Relay;
use crate::support::signed_dns::{Kind, SignedDns};
use crate::support::smtp::{submit_all, Client};
use crate::support::tls_receiver::{AfterTls, TlsReceiver};

/// The receivers, one address each, all on the one `mx_port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rx {
    /// TLS, a self-signed certificate (DANE-EE ignores that).
    SelfSigned,
    /// TLS, a test-CA certificate that expired yesterday.
    Expired,
    /// Postfix, TLS with a test-CA certificate for `mx.ta1.test`, chain
    /// served (leaf and CA, as DANE-TA needs); accepts plaintext too.
    Postfix,
    /// TLS, a test-CA certificate for `mx.elsewhere.test`, chain served.
    WrongName,
    /// No STARTTLS.
    Plain,
    /// Strips STARTTLS on the way to the Postfix.
    Strip,
}

const RECEIVERS: [Rx; 6] = [
    Rx::SelfSigned,
    Rx::Expired,
    Rx::Postfix,
    Rx::WrongName,
    Rx::Plain,
    Rx::Strip,
];

impl Rx {
    fn ip(self) -> &'static str {
        match self {
            Rx::SelfSigned => "127.0.0.2",
            Rx::Expired => "127.0.0.3",
            Rx::Postfix => "127.0.0.4",
            Rx::WrongName => "127.0.0.5",
            Rx::Plain => "127.0.0.6",
            Rx::Strip => "127.0.0.7",
        }
    }
}

/// The relay configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Run {
    /// DANE by default; the connector-precedence cells (existing levels).
    Default,
    /// `tls = "dane"` connectors.
    DaneLevel,
    /// `[delivery] dane = false`.
    DaneOff,
}

const RUNS: [Run; 3] = [Run::Default, Run::DaneLevel, Run::DaneOff];

/// What a cell must come to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Delivered over TLS to this receiver.
    Tls(Rx),
    /// Delivered in plaintext to this receiver.
    Plain(Rx),
    /// Kept queued, 4.7.x, a reason naming DANE; nothing sent anywhere.
    Defer,
}

use Expect::{Defer, Plain, Tls};

struct Cell {
    name: &'static str,
    run: Run,
    domain: &'static str,
    expect: Expect,
    /// The `dane=` words the last attempt may log (empty: not checked,
    /// where the brief leaves the word open).
    dane: &'static [&'static str],
}

const fn cell(
    name: &'static str,
    run: Run,
    domain: &'static str,
    expect: Expect,
    dane: &'static [&'static str],
) -> Cell {
    Cell {
        name,
        run,
        domain,
        expect,
        dane,
    }
}

const VERIFIED: &[&str] = &["verified"];
const FAILED: &[&str] = &["failed"];
const UNUSABLE: &[&str] = &["host-unusable"];

/// The matrix of issue 15 plus DESIGN.md §5b's precedence rows.
#[rustfmt::skip]
const CELLS: [Cell; 25] = [
    // secure + 3 1 1 right key: delivered over TLS whatever the certificate.
    cell("ee-self-signed", Run::Default, "ee1.test", Tls(Rx::SelfSigned), VERIFIED),
    cell("ee-expired", Run::Default, "ee2.test", Tls(Rx::Expired), VERIFIED),
    // secure + 3 1 1 wrong key: the next MX with the right key gets it …
    cell("ee-wrong-then-right", Run::Default, "ee3.test", Tls(Rx::SelfSigned), VERIFIED),
    // … and with no such MX it waits.
    cell("ee-wrong-only", Run::Default, "ee4.test", Defer, FAILED),
    // secure + 2 1 1 on the CA: the right name delivers, a wrong one defers.
    cell("ta-right-name", Run::Default, "ta1.test", Tls(Rx::Postfix), VERIFIED),
    cell("ta-wrong-name", Run::Default, "ta2.test", Defer, FAILED),
    // secure TLSA, but no STARTTLS, or STARTTLS stripped on the way.
    cell("no-starttls", Run::Default, "nostls.test", Defer, FAILED),
    cell("stripped", Run::Default, "strip.test", Defer, FAILED),
    // only usage 0/1 records: TLS mandatory, unauthenticated.
    cell("usage-0-1", Run::Default, "u01.test", Tls(Rx::SelfSigned), &["encrypt-only"]),
    cell("usage-0-1-no-starttls", Run::Default, "u01plain.test", Defer, &["encrypt-only", "failed"]),
    // secure denial of TLSA, and an insecure zone: today's opportunistic TLS.
    cell("secure-denial", Run::Default, "nodane.test", Plain(Rx::Plain), &["none"]),
    cell("insecure-zone", Run::Default, "insec.test", Plain(Rx::Plain), &["insecure"]),
    // bogus MX, bogus TLSA, TLSA timing out.
    cell("bogus-zone", Run::Default, "bogus.test", Defer, &["mx-bogus"]),
    cell("bogus-tlsa", Run::Default, "badtlsa.test", Defer, UNUSABLE),
    cell("tlsa-timeout", Run::Default, "slow.test", Defer, UNUSABLE),
    // DESIGN.md §5b precedence: none, verify-ca and pinned keep their own
    // check (TLSA right for none; wrong for the others, which their own
    // check passes); required and opportunistic are upgraded (wrong TLSA).
    cell("connector-none", Run::Default, "pnone.test", Plain(Rx::Postfix), &[]),
    cell("connector-verify-ca", Run::Default, "pvca.test", Tls(Rx::Postfix), &[]),
    cell("connector-pinned", Run::Default, "ppin.test", Tls(Rx::Postfix), &[]),
    cell("connector-required", Run::Default, "preq.test", Defer, FAILED),
    cell("connector-opportunistic", Run::Default, "popp.test", Defer, FAILED),
    // tls = "dane": DANE required.
    cell("dane-level-verified", Run::DaneLevel, "ee1.test", Tls(Rx::SelfSigned), VERIFIED),
    cell("dane-level-insecure", Run::DaneLevel, "insec.test", Defer, &["required-missing"]),
    cell("dane-level-no-tlsa", Run::DaneLevel, "nodane.test", Defer, &["required-missing"]),
    // [delivery] dane = false: TLSA ignored.
    cell("dane-off-wrong-key", Run::DaneOff, "ee4.test", Tls(Rx::SelfSigned), &["off"]),
    cell("dane-off-no-starttls", Run::DaneOff, "nostls.test", Plain(Rx::Plain), &["off"]),
];

impl Cell {
    fn sender(&self) -> String {
        format!("{}@sender.test", self.name)
    }

    fn recipient(&self) -> String {
        format!("{}@{}", self.name, self.domain)
    }

    /// In the message's body, with a terminator no other cell's shares.
    fn secret(&self) -> String {
        format!("the secret of dane cell {}.", self.name)
    }

    fn content(&self) -> String {
        format!(
            "From: {from}\r\nTo: {to}\r\nSubject: dane cell {name}\r\n\
             Message-ID: <{name}@dane.test>\r\n\r\n{secret}\r\n",
            from = self.sender(),
            to = self.recipient(),
            name = self.name,
            secret = self.secret(),
        )
    }

    /// What of the cell shows in any trace: its sender in angle brackets
    /// (MAIL FROM, Postfix's `from=<…>`), its recipient, its text.
    fn traces(&self) -> [String; 3] {
        [
            format!("<{}>", self.sender()),
            format!("<{}>", self.recipient()),
            self.secret(),
        ]
    }
}

/// This run's certificates and the TLSA records they make.
struct Certs {
    dir: tempfile::TempDir,
    ca: TestCa,
    self_signed: Issued,
    expired: Issued,
    postfix: Issued,
    wrong_name: Issued,
    /// Nobody serves this key: the "wrong key" of the TLSA records.
    foreign: Issued,
}

/// SHA-256 of the SubjectPublicKeyInfo of `der`, as a `3 1 1` record.
fn ee(issued: &Issued) -> Tlsa {
    let (_, cert) = X509Certificate::from_der(&issued.der).expect("a test certificate");
    Tlsa::dane_ee_spki_sha256(cert.public_key().raw)
}

impl Certs {
    fn new() -> Certs {
        let ca = TestCa::root("tlsrelay DANE lab CA", Key::P256);
        let p256 = |names: &[&str]| Spec::new(names, Key::P256);
        let expired =
            p256(&["mx.ee2.test"]).valid(time::Duration::days(-30), time::Duration::days(-1));
        let certs = Certs {
            dir: tempfile::tempdir().expect("tempdir"),
            self_signed: ca::self_signed(&p256(&["mx.self-signed.test"])),
            expired: ca.leaf(&expired),
            postfix: ca.leaf(&p256(&["mx.ta1.test"])),
            wrong_name: ca.leaf(&p256(&["mx.elsewhere.test"])),
            foreign: ca::self_signed(&p256(&["mx.nobody.test"])),
            ca,
        };
        std::fs::write(certs.ca_file(), certs.ca.pem()).expect("write ca.pem");
        std::fs::write(certs.postfix_cert(), certs.chain(&certs.postfix)).expect("write");
        std::fs::write(certs.postfix_key(), &certs.postfix.key_pem).expect("write");
        certs
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn postfix_cert(&self) -> PathBuf {
        self.dir.path().join("postfix.crt")
    }

    fn postfix_key(&self) -> PathBuf {
        self.dir.path().join("postfix.key")
    }

    /// The leaf and the CA that issued it, as a server serves them.
    fn chain(&self, leaf: &Issued) -> String {
        format!("{}{}", leaf.cert_pem, self.ca.pem())
    }

    /// The `2 1 1` record of the CA's key.
    fn ta(&self) -> Tlsa {
        let mut record = ee(&self.ca.issued);
        record.usage = 2;
        record
    }

    /// `3 1 1` of `issued` with another usage (0 or 1: not usable).
    fn with_usage(issued: &Issued, usage: u8) -> Tlsa {
        let mut record = ee(issued);
        record.usage = usage;
        record
    }
}

/// The child zones of `test.`, TLSA owners on `port`.
fn zones(certs: &Certs, port: u16) -> Vec<(&'static str, Kind, String)> {
    // One MX host `mx` at `rx` with `tlsa` records.
    let one = |rx: Rx, tlsa: &[&Tlsa]| {
        let mut text = format!("@ MX 10 mx\nmx A {}\n", rx.ip());
        for record in tlsa {
            text.push_str(&format!("_{port}._tcp.mx TLSA {record}\n"));
        }
        text
    };
    let right = ee(&certs.self_signed);
    let wrong = ee(&certs.foreign);
    let ee3 = format!(
        "@ MX 10 mx1\n@ MX 20 mx2\nmx1 A {}\nmx2 A {}\n\
         _{port}._tcp.mx1 TLSA {wrong}\n_{port}._tcp.mx2 TLSA {right}\n",
        Rx::WrongName.ip(),
        Rx::SelfSigned.ip()
    );
    let u01 = [
        Certs::with_usage(&certs.ca.issued, 0),
        Certs::with_usage(&certs.self_signed, 1),
    ];
    vec![
        ("ee1.test", Kind::Secure, one(Rx::SelfSigned, &[&right])),
        (
            "ee2.test",
            Kind::Secure,
            one(Rx::Expired, &[&ee(&certs.expired)]),
        ),
        ("ee3.test", Kind::Secure, ee3),
        ("ee4.test", Kind::Secure, one(Rx::SelfSigned, &[&wrong])),
        ("ta1.test", Kind::Secure, one(Rx::Postfix, &[&certs.ta()])),
        ("ta2.test", Kind::Secure, one(Rx::WrongName, &[&certs.ta()])),
        ("nostls.test", Kind::Secure, one(Rx::Plain, &[&right])),
        (
            "strip.test",
            Kind::Secure,
            one(Rx::Strip, &[&ee(&certs.postfix)]),
        ),
        (
            "u01.test",
            Kind::Secure,
            one(Rx::SelfSigned, &[&u01[0], &u01[1]]),
        ),
        ("u01plain.test", Kind::Secure, one(Rx::Plain, &[&u01[1]])),
        ("nodane.test", Kind::Secure, one(Rx::Plain, &[])),
        ("insec.test", Kind::Insecure, one(Rx::Plain, &[&wrong])),
        ("bogus.test", Kind::Bogus, one(Rx::SelfSigned, &[&right])),
        (
            "badtlsa.test",
            Kind::BrokenTlsa,
            one(Rx::SelfSigned, &[&right]),
        ),
        ("slow.test", Kind::Secure, one(Rx::SelfSigned, &[&right])),
        (
            "pnone.test",
            Kind::Secure,
            one(Rx::Postfix, &[&ee(&certs.postfix)]),
        ),
        ("pvca.test", Kind::Secure, one(Rx::Postfix, &[&wrong])),
        ("ppin.test", Kind::Secure, one(Rx::Postfix, &[&wrong])),
        ("preq.test", Kind::Secure, one(Rx::SelfSigned, &[&wrong])),
        ("popp.test", Kind::Secure, one(Rx::SelfSigned, &[&wrong])),
    ]
}

/// The TLSA name whose queries the name server swallows.
fn timeout_name(port: u16) -> String {
    format!("_{port}._tcp.mx.slow.test")
}

/// The running receivers.
struct Receivers {
    port: u16,
    self_signed: TlsReceiver,
    expired: TlsReceiver,
    wrong_name: TlsReceiver,
    postfix: Postfix,
    plain: Receiver,
    strip: StripProxy,
}

fn bind(rx: Rx, port: u16) -> TcpListener {
    TcpListener::bind((rx.ip(), port)).unwrap_or_else(|e| panic!("bind {}:{port}: {e}", rx.ip()))
}

impl Receivers {
    fn start(certs: &Certs) -> Receivers {
        let versions = [&TLS13, &TLS12];
        let first = bind(Rx::SelfSigned, 0);
        let port = first.local_addr().expect("local_addr").port();
        let tls = |listener, issued: &Issued, chain: String| {
            TlsReceiver::serving(
                listener,
                &chain,
                &issued.key_pem,
                &versions,
                AfterTls::Serve,
            )
        };
        let self_signed = tls(
            first,
            &certs.self_signed,
            certs.self_signed.cert_pem.clone(),
        );
        let expired = tls(
            bind(Rx::Expired, port),
            &certs.expired,
            certs.chain(&certs.expired),
        );
        let wrong_name = tls(
            bind(Rx::WrongName, port),
            &certs.wrong_name,
            certs.chain(&certs.wrong_name),
        );
        let domains: Vec<&str> = CELLS.iter().map(|c| c.domain).collect();
        let postfix = PostfixOptions::new()
            .hostname("mx.ta1.test")
            .listen_ip(Rx::Postfix.ip().parse::<Ipv4Addr>().expect("ip"))
            .smtp_port(port)
            .starttls(certs.postfix_cert(), certs.postfix_key())
            .maildir_domains(&domains)
            .main_cf("smtpd_tls_received_header", "yes")
            .start();
        let plain = Receiver::on(bind(Rx::Plain, port));
        let strip = StripProxy::on(bind(Rx::Strip, port), postfix.smtp_addr());
        Receivers {
            port,
            self_signed,
            expired,
            wrong_name,
            postfix,
            plain,
            strip,
        }
    }

    fn addr(&self, rx: Rx) -> SocketAddr {
        SocketAddr::new(rx.ip().parse().expect("ip"), self.port)
    }

    fn tls(&self, rx: Rx) -> Option<&TlsReceiver> {
        match rx {
            Rx::SelfSigned => Some(&self.self_signed),
            Rx::Expired => Some(&self.expired),
            Rx::WrongName => Some(&self.wrong_name),
            _ => None,
        }
    }

    /// Whether `rx` took the cell's message, and over TLS or not.
    fn got(&self, rx: Rx, cell: &Cell) -> Option<bool> {
        let secret = cell.secret();
        if let Some(tls) = self.tls(rx) {
            let sessions = tls.sessions();
            return sessions
                .iter()
                .find(|s| s.messages.iter().any(|m| m.contains(&secret)))
                .map(|s| s.version.is_some());
        }
        match rx {
            Rx::Postfix => self
                .postfix
                .delivered()
                .into_iter()
                .find(|m| m.contains(&secret))
                .map(|m| first_received(&m).contains("(using TLSv")),
            Rx::Plain => self
                .plain
                .seen()
                .delivered()
                .iter()
                .any(|t| t.content().contains(&secret))
                .then_some(false),
            // Behind the proxy is the Postfix, checked on its own.
            _ => None,
        }
    }

    /// What `rx` saw of the cell: the traces found.
    fn saw(&self, rx: Rx, cell: &Cell) -> Vec<String> {
        let seen: Vec<String> = match (rx, self.tls(rx)) {
            (_, Some(tls)) => tls
                .sessions()
                .iter()
                .flat_map(|s| {
                    let mut all = vec![s.plaintext.clone()];
                    all.extend(s.envelope.iter().cloned());
                    all.extend(s.messages.iter().cloned());
                    all
                })
                .collect(),
            (Rx::Postfix, _) => {
                let mut all = self.postfix.delivered();
                all.push(self.postfix.log());
                all
            }
            (Rx::Plain, _) => self
                .plain
                .seen()
                .transactions
                .iter()
                .map(|t| format!("<{}> {:?} {}", t.mail_from, t.rcpt_to, t.content()))
                .collect(),
            _ => self
                .strip
                .sent()
                .iter()
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .collect(),
        };
        let rcpt = format!("{:?}", vec![cell.recipient()]);
        cell.traces()
            .iter()
            .chain(std::iter::once(&rcpt))
            .filter(|trace| seen.iter().any(|s| s.contains(trace.as_str())))
            .cloned()
            .collect()
    }
}

/// The lab's name service: nsd behind the dropping forwarder.
struct Names {
    tree: SignedDns,
    dropping: DroppingDns,
}

/// The relay configuration of `run`.
fn relay_config(run: Run, port: u16, names: &Names, certs: &Certs) -> String {
    let dane = match run {
        Run::DaneOff => "dane = false\n",
        _ => "",
    };
    let mut config = format!(
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [queue]\nretry_intervals = [\"1h\"]\n\
         [delivery]\nmx_port = {port}\nconnect_timeout = \"4s\"\n{dane}\
         [dns]\nreverse_lookups = false\nnameservers = [\"{}\"]\ntimeout = \"1s\"\n\
         trust_anchor = \"{}\"\n",
        names.dropping.addr,
        names.tree.anchor.display()
    );
    let connector = |name: &str, domain: &str, level: &str, extra: &str| {
        format!(
            "[[outbound]]\nname = \"{name}\"\nrecipient_domains = [\"{domain}\"]\n\
             tls = \"{level}\"\n{extra}"
        )
    };
    let connectors: Vec<String> = match run {
        Run::Default => {
            let pin = openssl_spki_pin(&certs.postfix_cert());
            vec![
                connector("none", "pnone.test", "none", ""),
                connector(
                    "verify-ca",
                    "pvca.test",
                    "verify-ca",
                    "ca_file = \"ca.pem\"\n",
                ),
                connector(
                    "pinned",
                    "ppin.test",
                    "pinned",
                    &format!("fingerprints = [\"{pin}\"]\n"),
                ),
                connector("required", "preq.test", "required", ""),
                connector("opportunistic", "popp.test", "opportunistic", ""),
            ]
        }
        Run::DaneLevel => ["ee1.test", "insec.test", "nodane.test"]
            .iter()
            .map(|domain| connector(&format!("dane-{domain}"), domain, "dane", ""))
            .collect(),
        Run::DaneOff => Vec::new(),
    };
    config.extend(connectors);
    config
}

/// Whether `tlsrelay check-config` takes `config` (with the CA file
/// beside it); its complaint if not.
fn check_config(config: &str, certs: &Certs) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("tlsrelay.toml");
    std::fs::write(&file, config).expect("write config");
    std::fs::copy(certs.ca_file(), dir.path().join("ca.pem")).expect("copy ca.pem");
    let output = tlsrelay(&["check-config", "-c"], &file);
    match output.status.success() {
        true => Ok(()),
        false => Err(format!("{}{}", output.stdout, output.stderr)),
    }
}

struct Output {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

/// `tlsrelay ARGS… FILE` (bounded).
fn tlsrelay(args: &[&str], file: &Path) -> Output {
    let output = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
            .args(args)
            .arg(file)
            .env_remove("RUST_LOG"),
        Duration::from_secs(60),
    );
    Output {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Sends each cell's message through `relay` in one session; queue ids.
fn send(relay: &Relay, cells: &[&Cell]) -> Vec<String> {
    let messages: Vec<[String; 3]> = cells
        .iter()
        .map(|c| [c.sender(), c.recipient(), c.content()])
        .collect();
    submit_all(relay.smtp, &messages)
}

/// Where a message stands: gone from the queue, or attempted and queued.
#[derive(Debug)]
enum Settled {
    Gone,
    Queued(DeliveryState),
}

fn settled(relay: &Relay, id: &str) -> Option<Settled> {
    if !relay.queued(id) {
        return Some(Settled::Gone);
    }
    let state = relay.state(id)?;
    (state.attempts > 0).then_some(Settled::Queued(state))
}

/// The `delivery attempt` log lines of `id`, as JSON.
fn attempts(relay: &Relay, id: &str) -> Vec<serde_json::Value> {
    relay
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| {
            event["fields"]["message"] == "delivery attempt" && event["fields"]["queue_id"] == id
        })
        .collect()
}

/// The `dane=` word of an attempt line: its `dane` field, or `dane=WORD`
/// in its text.
fn dane_word(event: &serde_json::Value) -> Option<String> {
    if let Some(word) = event["fields"]["dane"].as_str() {
        return Some(word.to_string());
    }
    let text = event.to_string();
    let (_, after) = text.split_once("dane=")?;
    Some(
        after
            .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
            .next()
            .unwrap_or_default()
            .to_string(),
    )
}

/// What `probe` says it would do, from its closing `Verdict: mail to
/// DOMAIN would …` line; that line.
fn probe_verdict(report: &str) -> Option<(Expect, &str)> {
    let line = report
        .lines()
        .find(|l| l.starts_with("Verdict: mail to "))?;
    let (_, verdict) = line.split_once(" would ")?;
    // "would wait in the queue: …" is probe's overall deferral.
    let expect = if verdict.starts_with("defer") || verdict.starts_with("wait in the queue") {
        Defer
    } else if verdict.starts_with("deliver in plaintext") {
        Plain(Rx::Plain)
    } else if verdict.starts_with("deliver with TLS") {
        Tls(Rx::Plain)
    } else {
        return None;
    };
    Some((expect, line))
}

/// The kind of an outcome, receivers aside.
fn class(expect: Expect) -> &'static str {
    match expect {
        Tls(_) => "TLS",
        Plain(_) => "plaintext",
        Defer => "deferred",
    }
}

/// A relay run: its process (if its configuration was taken) and the
/// queue id of each of its cells.
struct Running {
    run: Run,
    relay: Result<Relay, String>,
    ids: Vec<(usize, String)>,
}

impl Running {
    fn config_file(&self) -> Option<PathBuf> {
        self.relay
            .as_ref()
            .ok()
            .map(|r| r.dir().join("tlsrelay.toml"))
    }
}

/// Checks one cell against what the receivers saw, the spool and the log.
fn check_cell(
    cell: &Cell,
    relay: &Relay,
    id: &str,
    state: &Settled,
    receivers: &Receivers,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let lines = attempts(relay, id);
    let expected_at = match cell.expect {
        Tls(rx) | Plain(rx) => Some(rx),
        Defer => None,
    };
    for rx in RECEIVERS {
        if Some(rx) == expected_at {
            continue;
        }
        // The proxy carries what reaches the Postfix behind it.
        if rx == Rx::Postfix && expected_at == Some(Rx::Strip) {
            continue;
        }
        let seen = receivers.saw(rx, cell);
        if !seen.is_empty() {
            wrong.push(format!("{rx:?} saw {}", seen.join(", ")));
        }
    }
    match (cell.expect, state) {
        (Tls(rx) | Plain(rx), Settled::Gone) => {
            let over_tls = matches!(cell.expect, Tls(_));
            match receivers.got(rx, cell) {
                Some(tls) if tls == over_tls => {}
                Some(tls) => wrong.push(format!(
                    "{rx:?} got it {}, not {}",
                    if tls { "over TLS" } else { "in plaintext" },
                    class(cell.expect)
                )),
                None => wrong.push(format!("{rx:?} never got it")),
            }
        }
        (Tls(_) | Plain(_), Settled::Queued(s)) => {
            let r = &s.recipients[0];
            wrong.push(format!(
                "still queued: {:?} {:?} {:?}",
                r.status, r.code, r.reason
            ));
        }
        (Defer, Settled::Queued(s)) => {
            let r = &s.recipients[0];
            let code = r.code.map(|c| c.to_string()).unwrap_or_default();
            let reason = r.reason.as_deref().unwrap_or("");
            if !(r.status == Status::Pending && code.starts_with("4.7.") && reason.contains("DANE"))
            {
                wrong.push(format!(
                    "queued as {:?} {code} {reason:?}, not 4.7.x naming DANE",
                    r.status
                ));
            }
            let show = tlsrelay(
                &["queue", "show", id, "-c"],
                &relay.dir().join("tlsrelay.toml"),
            );
            if !(show.stdout.contains(&code) && show.stdout.contains("DANE")) {
                wrong.push(format!(
                    "queue show does not say {code} … DANE:\n{}{}",
                    show.stdout, show.stderr
                ));
            }
        }
        (Defer, Settled::Gone) => wrong.push("left the queue (delivered or bounced)".into()),
    }
    if !cell.dane.is_empty() {
        let last = lines.last().and_then(dane_word);
        if !last.as_deref().is_some_and(|w| cell.dane.contains(&w)) {
            wrong.push(format!(
                "last attempt logs dane={last:?}, not one of {:?}",
                cell.dane
            ));
        }
    }
    wrong
}

/// `probe DOMAIN` under the cell's configuration: the verdict of what
/// `delivered` (a deferral naming DANE), and the DANE word on a line that
/// says DANE.
fn check_probe(cell: &Cell, delivered: &str, config: &Path) -> Option<String> {
    let report = tlsrelay(&["probe", cell.domain, "-c"], config);
    let mut wrong = Vec::new();
    match probe_verdict(&report.stdout) {
        Some((verdict, line)) if class(verdict) == delivered => {
            if verdict == Defer && !line.contains("DANE") {
                wrong.push("its verdict does not name DANE".to_string());
            }
        }
        verdict => wrong.push(format!(
            "it says {}, delivery did {delivered}",
            verdict.map_or("nothing readable", |(v, _)| class(v)),
        )),
    }
    let shows_word = report.stdout.lines().any(|l| {
        l.to_ascii_uppercase().contains("DANE") && cell.dane.iter().any(|w| l.contains(w))
    });
    if !cell.dane.is_empty() && !shows_word {
        wrong.push(format!("no line says DANE and one of {:?}", cell.dane));
    }
    (!wrong.is_empty()).then(|| {
        format!(
            "{}; probe {}:\n{}{}",
            wrong.join("; "),
            cell.domain,
            report.stdout,
            report.stderr
        )
    })
}

/// The lab works, whatever the relay does: the zones are signed as
/// meant (our own validating resolver reads them), the dropping name
/// server passes the zone and swallows the one TLSA query, every
/// receiver answers on its address, the proxy strips STARTTLS.
fn check_lab(names: &Names, certs: &Certs, receivers: &Receivers) {
    let port = receivers.port;
    let dns = crate::dane_dns::dns(names.dropping.addr, &names.tree.anchor, "");
    crate::dane_dns::runtime().block_on(async {
        for (domain, kind, _) in zones(certs, port) {
            let mx = dns.mx_checked(domain).await;
            let security = mx.as_ref().ok().map(|v| v.security);
            let want = match kind {
                Kind::Secure | Kind::BrokenTlsa => Some(Security::Secure),
                Kind::Insecure => Some(Security::Insecure),
                Kind::Bogus => None,
            };
            assert_eq!(security, want, "{domain}: {mx:?}");
        }
        let tlsa = dns.tlsa("mx.ee1.test", port).await;
        assert_eq!(tlsa, TlsaAnswer::Records(vec![ee(&certs.self_signed)]));
        let tlsa = dns.tlsa("mx.ta1.test", port).await;
        assert_eq!(tlsa, TlsaAnswer::Records(vec![certs.ta()]));
        assert_eq!(
            dns.tlsa("mx.nodane.test", port).await,
            TlsaAnswer::SecureDenial
        );
        let tlsa = dns.tlsa("mx.badtlsa.test", port).await;
        assert!(matches!(tlsa, TlsaAnswer::Bogus(_)), "{tlsa:?}");
        let tlsa = dns.tlsa("mx.slow.test", port).await;
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
            names.dropping.dropped() > 0,
            "the TLSA query was never dropped"
        );
    });
    for rx in RECEIVERS {
        let (mut client, greeting) = Client::connect(receivers.addr(rx));
        assert!(greeting.starts_with("220"), "{rx:?}: {greeting}");
        let ehlo = client.command("EHLO client.test");
        let offers = ehlo.contains("STARTTLS");
        assert_eq!(
            offers,
            !matches!(rx, Rx::Plain | Rx::Strip),
            "{rx:?} EHLO reply: {ehlo}"
        );
    }
    assert!(receivers.strip.stripped() > 0, "the proxy stripped nothing");
}

#[test]
#[ignore = "real peers: nsd, ldnsutils, Postfix, a network namespace (root); run by .ci/run"]
fn dane_against_signed_zones_and_real_receivers() {
    let ips: Vec<&str> = RECEIVERS.iter().map(|rx| rx.ip()).collect();
    in_namespace(&ips, every_cell);
}

fn every_cell() {
    let started = Instant::now();
    let certs = Certs::new();
    let receivers = Receivers::start(&certs);
    let port = receivers.port;
    let mut tree = SignedDns::builder();
    for (name, kind, records) in zones(&certs, port) {
        tree = tree.zone(name, kind, &records);
    }
    let tree = tree.start();
    let dropping = DroppingDns::start(tree.addr, &timeout_name(port), TLSA);
    let names = Names { tree, dropping };
    check_lab(&names, &certs, &receivers);
    let lab_up = started.elapsed();

    let mut runs: Vec<Running> = RUNS
        .iter()
        .map(|&run| {
            let config = relay_config(run, port, &names, &certs);
            let relay = check_config(&config, &certs).map(|()| {
                let ca = certs.ca.pem().to_string();
                Relay::start_with_files(&config, &[("ca.pem", &ca)])
            });
            Running {
                run,
                relay,
                ids: Vec::new(),
            }
        })
        .collect();
    // The default configuration uses only today's keys: it must start.
    if let Err(why) = &runs[0].relay {
        panic!("the default relay configuration was refused:\n{why}");
    }
    for running in &mut runs {
        let Ok(relay) = &running.relay else { continue };
        let cells: Vec<(usize, &Cell)> = CELLS
            .iter()
            .enumerate()
            .filter(|(_, c)| c.run == running.run)
            .collect();
        let ids = send(relay, &cells.iter().map(|(_, c)| *c).collect::<Vec<_>>());
        running.ids = cells.iter().map(|(i, _)| *i).zip(ids).collect();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut states: BTreeMap<usize, Settled> = BTreeMap::new();
    while states.len() < runs.iter().map(|r| r.ids.len()).sum::<usize>() {
        for running in &runs {
            let Ok(relay) = &running.relay else { continue };
            for (i, id) in &running.ids {
                if !states.contains_key(i) {
                    if let Some(s) = settled(relay, id) {
                        states.insert(*i, s);
                    }
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "cells unsettled after 60 s: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let settled_at = started.elapsed();

    // Per cell: what delivery did, and what went wrong.
    let mut refused = Vec::new();
    let mut table = Vec::new();
    let mut wrong: BTreeMap<usize, (String, Vec<String>)> = BTreeMap::new();
    let mut delivered: BTreeMap<usize, &'static str> = BTreeMap::new();
    for running in &runs {
        let relay = match &running.relay {
            Ok(relay) => relay,
            Err(why) => {
                refused.push(format!(
                    "{:?}: the relay refused its configuration:\n{why}",
                    running.run
                ));
                continue;
            }
        };
        for (i, id) in &running.ids {
            let cell = &CELLS[*i];
            let lines = attempts(relay, id);
            let did = match &states[i] {
                Settled::Queued(_) => "deferred",
                Settled::Gone => match lines.last().and_then(|l| l["fields"]["tls"].as_str()) {
                    Some(tls) if tls.starts_with("TLSv") => "TLS",
                    Some(tls) if tls.starts_with("plaintext") => "plaintext",
                    _ => "gone",
                },
            };
            delivered.insert(*i, did);
            let summary: Vec<String> = lines
                .iter()
                .map(|e| format!("{} -> {}", e["fields"]["tls"], e["fields"]["result"]))
                .collect();
            let found = check_cell(cell, relay, id, &states[i], &receivers);
            wrong.insert(*i, (format!("queue id {id}, attempts {summary:?}"), found));
        }
    }
    // probe, under each configuration, every cell at once.
    let probed: Vec<(usize, Option<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .filter_map(|running| running.config_file().map(|file| (file, running)))
            .flat_map(|(file, running)| {
                let delivered = &delivered;
                running.ids.iter().map(move |(i, _)| {
                    let file = file.clone();
                    scope.spawn(move || (*i, check_probe(&CELLS[*i], delivered[i], &file)))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    for (i, probe) in probed {
        if let (Some(probe), Some((_, found))) = (probe, wrong.get_mut(&i)) {
            found.push(probe);
        }
    }
    let mut failures = refused;
    for (i, cell) in CELLS.iter().enumerate() {
        let (observed, mark) = match (delivered.get(&i), wrong.get(&i)) {
            (Some(did), Some((_, found))) => (*did, if found.is_empty() { " " } else { "!" }),
            _ => ("not run", "!"),
        };
        table.push(format!(
            "{mark} {:24} {:9} expected {:9} delivery {observed}",
            cell.name,
            format!("{:?}", cell.run),
            class(cell.expect)
        ));
        if let Some((context, found)) = wrong.get(&i).filter(|(_, f)| !f.is_empty()) {
            failures.push(format!(
                "{} ({context}):\n  - {}",
                cell.name,
                found.join("\n  - ")
            ));
        }
    }
    eprintln!(
        "{}\nlab up after {lab_up:?}, cells settled after {settled_at:?}, done after {:?}",
        table.join("\n"),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cells wrong:\n{}",
        table.iter().filter(|l| l.starts_with('!')).count(),
        CELLS.len(),
        failures.join("\n\n")
    );
}
