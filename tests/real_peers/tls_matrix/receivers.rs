//! The receivers of the TLS matrix: private Postfix instances configured
//! for each case of DESIGN.md §5 and scripted ones whose STARTTLS breaks,
//! with the certificates they serve (from one test CA per run).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::Cell;
use crate::support::ca::{self, Key, Spec, TestCa};
use crate::support::faulty::{AfterStartTls, FaultyReceiver};
use crate::support::openssl_spki_pin;
use crate::support::postfix::{run_bounded, Postfix, PostfixOptions};

/// The names "right" certificates carry: the smarthost (tests reach
/// receivers by IP, so verify-host checks 127.0.0.1) and the partner name
/// every verify-domain connector lists in `tls_domains`.
const RIGHT_NAMES: [&str; 2] = ["mx.good.test", "127.0.0.1"];
pub(super) const TLS_DOMAIN: &str = "mx.good.test";
/// The receivers of issue 5, (a) to (h) and the scripted ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    /// (a) TLS 1.2 and 1.3, a test-CA certificate with the right names.
    Tls13,
    /// (b) the same, TLS 1.2 only.
    Tls12,
    /// (c) no STARTTLS.
    NoStartTls,
    /// (d) right names, RSA leaf under a test-CA intermediate (chain served).
    CaChain,
    /// (e) the test CA, a name that is neither the host nor the domain.
    WrongName,
    /// (f) self-signed, right names.
    SelfSigned,
    /// (g) the test CA, right names, expired yesterday.
    Expired,
    /// (h) TLS 1.0 and 1.1 only (OpenSSL at security level 0).
    Tls10,
    /// Offers STARTTLS, says `220`, hangs up.
    HangUp,
    /// Offers STARTTLS, says `220`, answers the ClientHello with garbage.
    Garbage,
    /// Offers STARTTLS, says `220`, then nothing.
    Stall,
}

pub(super) const ALL: [Kind; 11] = [
    Kind::Tls13,
    Kind::Tls12,
    Kind::NoStartTls,
    Kind::CaChain,
    Kind::WrongName,
    Kind::SelfSigned,
    Kind::Expired,
    Kind::Tls10,
    Kind::HangUp,
    Kind::Garbage,
    Kind::Stall,
];

impl Kind {
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Tls13 => "tls13",
            Kind::Tls12 => "tls12",
            Kind::NoStartTls => "nostarttls",
            Kind::CaChain => "ca-chain",
            Kind::WrongName => "wrong-name",
            Kind::SelfSigned => "self-signed",
            Kind::Expired => "expired",
            Kind::Tls10 => "tls10",
            Kind::HangUp => "hangup",
            Kind::Garbage => "garbage",
            Kind::Stall => "stall",
        }
    }
}

/// The certificates of one run, written as PEM into one folder.
pub(super) struct Certs {
    dir: TempDir,
    pub(super) ca: TestCa,
}

/// A certificate file (chain, leaf first) and its key.
pub(super) struct Pem {
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
}

impl Certs {
    pub(super) fn new() -> Certs {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::root("tlsrelay matrix CA", Key::P256);
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write ca.pem");
        Certs { dir, ca }
    }

    pub(super) fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn write(&self, name: &str, chain: &str, key: &str) -> Pem {
        let pem = Pem {
            cert: self.dir.path().join(format!("{name}.crt")),
            key: self.dir.path().join(format!("{name}.key")),
        };
        std::fs::write(&pem.cert, chain).expect("write cert");
        std::fs::write(&pem.key, key).expect("write key");
        pem
    }

    /// A leaf signed by the test CA.
    fn leaf(&self, name: &str, spec: &Spec) -> Pem {
        let leaf = self.ca.leaf(spec);
        self.write(name, &leaf.cert_pem, &leaf.key_pem)
    }

    /// What a receiver of `kind` serves, if it does TLS.
    pub(super) fn for_kind(&self, kind: Kind) -> Option<Pem> {
        let right = Spec::new(&RIGHT_NAMES, Key::P256);
        let name = kind.name();
        Some(match kind {
            Kind::Tls13 | Kind::Tls12 | Kind::Tls10 => self.leaf(name, &right),
            Kind::CaChain => {
                let intermediate = self
                    .ca
                    .intermediate("tlsrelay matrix intermediate", Key::P256);
                let leaf = intermediate.leaf(&Spec::new(&RIGHT_NAMES, Key::Rsa2048));
                let chain = format!("{}{}", leaf.cert_pem, intermediate.pem());
                self.write(name, &chain, &leaf.key_pem)
            }
            Kind::WrongName => self.leaf(name, &Spec::new(&["mx.wrong.test"], Key::P256)),
            Kind::SelfSigned => {
                let own = ca::self_signed(&right);
                self.write(name, &own.cert_pem, &own.key_pem)
            }
            Kind::Expired => self.leaf(
                name,
                &right.valid(time::Duration::days(-30), time::Duration::days(-1)),
            ),
            Kind::NoStartTls | Kind::HangUp | Kind::Garbage | Kind::Stall => return None,
        })
    }
}

enum Peer {
    Postfix(Postfix),
    Faulty(FaultyReceiver),
}

/// A receiver of the matrix and the pin of its own key, if it has one.
pub(super) struct Receiver {
    pub(super) kind: Kind,
    peer: Peer,
    pub(super) pin: Option<String>,
}

impl Receiver {
    /// Starts a receiver of `kind` that accepts mail for `domains`.
    pub(super) fn start(kind: Kind, certs: &Certs, domains: &[String]) -> Receiver {
        let pem = certs.for_kind(kind);
        let pin = pem.as_ref().map(|p| openssl_spki_pin(&p.cert));
        let after = match kind {
            Kind::HangUp => Some(AfterStartTls::HangUp),
            Kind::Garbage => Some(AfterStartTls::Garbage),
            Kind::Stall => Some(AfterStartTls::Stall),
            _ => None,
        };
        if let Some(after) = after {
            let peer = Peer::Faulty(FaultyReceiver::start(after));
            return Receiver { kind, peer, pin };
        }
        let domains: Vec<&str> = domains.iter().map(String::as_str).collect();
        let mut options = PostfixOptions::new()
            .hostname(&format!("mx.{}.test", kind.name()))
            .maildir_domains(&domains)
            .main_cf("smtpd_tls_received_header", "yes");
        if let Some(pem) = &pem {
            options = options.starttls(&pem.cert, &pem.key);
        }
        options = match kind {
            Kind::Tls12 => options.main_cf("smtpd_tls_protocols", ">=TLSv1.2, <=TLSv1.2"),
            // OpenSSL 3 allows the SHA-1 (or MD5+SHA-1) handshake
            // signatures of TLS 1.0/1.1 only at security level 0. Postfix
            // 3.7 evidently sets the level itself (TLS 1.0 works without
            // this line, while `openssl s_server` at the default level
            // refuses it); the line makes it explicit. OpenSSL's client
            // needs level 0 as well (see `confirm_versions`).
            Kind::Tls10 => options
                .main_cf("smtpd_tls_protocols", ">=TLSv1, <=TLSv1.1")
                .main_cf("tls_medium_cipherlist", "DEFAULT:@SECLEVEL=0"),
            _ => options,
        };
        let receiver = Receiver {
            kind,
            peer: Peer::Postfix(options.start()),
            pin,
        };
        receiver.confirm_versions();
        receiver
    }

    pub(super) fn addr(&self) -> SocketAddr {
        match &self.peer {
            Peer::Postfix(postfix) => postfix.smtp_addr(),
            Peer::Faulty(faulty) => faulty.addr,
        }
    }

    pub(super) fn postfix(&self) -> Option<&Postfix> {
        match &self.peer {
            Peer::Postfix(postfix) => Some(postfix),
            Peer::Faulty(_) => None,
        }
    }

    /// The receivers that claim a TLS version range really have it, as
    /// OpenSSL's own client sees it (at security level 0, so that it can
    /// speak TLS 1.0 at all).
    fn confirm_versions(&self) {
        let (works, refused): (&[&str], &[&str]) = match self.kind {
            Kind::Tls12 => (&["-tls1_2"], &["-tls1_3", "-tls1_1"]),
            Kind::Tls10 => (&["-tls1", "-tls1_1"], &["-tls1_2", "-tls1_3"]),
            _ => return,
        };
        for (flag, ok) in works
            .iter()
            .map(|f| (f, true))
            .chain(refused.iter().map(|f| (f, false)))
        {
            let output = run_bounded(
                Command::new("/usr/bin/openssl")
                    .args(["s_client", flag, "-cipher", "DEFAULT:@SECLEVEL=0"])
                    .args(["-starttls", "smtp", "-connect", &self.addr().to_string()]),
                Duration::from_secs(20),
            );
            let out = String::from_utf8_lossy(&output.stdout);
            let version = match *flag {
                "-tls1" => "TLSv1",
                "-tls1_1" => "TLSv1.1",
                "-tls1_2" => "TLSv1.2",
                _ => "TLSv1.3",
            };
            let agreed = out.contains(&format!("Protocol  : {version}\n"))
                && !out.contains("Cipher is (NONE)");
            assert_eq!(
                agreed,
                ok,
                "{} with openssl s_client {flag}: expected {}\n{out}{}",
                self.kind.name(),
                if ok { "a session" } else { "a refusal" },
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// How many mail transactions the receiver had in plaintext, once all
    /// its sessions have ended (`None` if they do not within `limit`), and
    /// what that count comes from, for messages.
    pub(super) fn plaintext_transactions(&self, limit: Duration) -> (Option<usize>, String) {
        match &self.peer {
            Peer::Postfix(postfix) => {
                let deadline = Instant::now() + limit;
                while postfix.sessions().len() < postfix.connections() && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                let sessions = postfix.sessions();
                let ended = sessions.len() >= postfix.connections();
                let plaintext = sessions.iter().filter(|s| s.plaintext_mail()).count();
                (ended.then_some(plaintext), postfix.log())
            }
            Peer::Faulty(faulty) => {
                let seen = faulty.seen();
                let plaintext = seen.iter().filter(|s| s.starts_with("plain:")).count();
                (Some(plaintext), format!("{seen:?}"))
            }
        }
    }

    /// The message of `cell` as the receiver stored it, if it got it.
    pub(super) fn received(&self, cell: &Cell) -> Option<String> {
        let subject = cell.subject();
        match &self.peer {
            Peer::Postfix(postfix) => postfix
                .delivered()
                .into_iter()
                .find(|m| m.contains(&subject)),
            Peer::Faulty(faulty) => faulty
                .seen()
                .into_iter()
                .find(|s| s.starts_with("plain:") && s.contains(&subject)),
        }
    }

    /// Whether anything of `cell` reached the receiver: its recipient in
    /// the log or the RCPTs seen, its subject in what was stored.
    pub(super) fn saw_anything_of(&self, cell: &Cell) -> bool {
        let recipient = cell.recipient();
        let named = match &self.peer {
            Peer::Postfix(postfix) => postfix.log().contains(&recipient),
            Peer::Faulty(faulty) => faulty.seen().iter().any(|s| s.contains(&recipient)),
        };
        named || self.received(cell).is_some()
    }
}

pub(super) use crate::support::postfix::first_received;

/// The receivers for `cells`, each accepting mail for its cells' domains.
pub(super) fn start_receivers(
    kinds: &[Kind],
    cells: &[Cell],
    certs: &Certs,
) -> BTreeMap<Kind, Receiver> {
    // In parallel: a Postfix start is mostly waiting for its scripts.
    std::thread::scope(|scope| {
        let starting: Vec<_> = kinds
            .iter()
            .map(|&kind| {
                let domains: Vec<String> = cells
                    .iter()
                    .filter(|c| c.kind == kind)
                    .map(Cell::domain)
                    .collect();
                scope.spawn(move || (kind, Receiver::start(kind, certs, &domains)))
            })
            .collect();
        starting
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e))
            })
            .collect()
    })
}
