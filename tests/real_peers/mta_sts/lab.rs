//! The MTA-STS lab: a test CA, receivers on one port of their own
//! addresses (each MX host its own), the zone that names them, and the
//! relay configuration, all inside a network namespace of the test's own
//! (`support::dane_lab::in_namespace`, as the DANE matrix does: Postfix
//! wants its address on `lo`, and nothing outside can disturb the ports).
//!
//! Every MX host has its own receiver, so whatever arrives, or any
//! connection at all, is attributable to one host of one domain:
//! * [`Rx::Good`]: Postfix, a test-CA certificate naming the MX host,
//!   chain served;
//! * [`Rx::WrongName`]: Postfix, a test-CA certificate for
//!   `mx.elsewhere.test` (the RFC 8460 `certificate-host-mismatch`);
//! * [`Rx::SelfSigned`]: Postfix, a self-signed certificate that does name
//!   the MX host (`certificate-not-trusted`, and only that);
//! * [`Rx::Strip`]: the STARTTLS-stripping proxy in front of a Good
//!   Postfix on an address of its own (`starttls-not-supported`);
//! * [`Rx::Plain`]: the scripted receiver without STARTTLS.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;

use crate::support::ca::{self_signed, Issued, Key, Spec, TestCa};
use crate::support::dane_lab::StripProxy;
use crate::support::postfix::{first_received, Postfix, PostfixOptions, SessionSummary};
use crate::support::receiver::Receiver;
use crate::support::relay::Relay;
use crate::support::smtp::Client;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rx {
    Good,
    WrongName,
    SelfSigned,
    Strip,
    Plain,
}

/// The policy host every lab's check fetches, apart from the cells'.
pub const LAB_CHECK: &str = "mta-sts.lab-check.test";

/// The test CA and the files made from it.
pub struct Certs {
    pub dir: tempfile::TempDir,
    pub ca: TestCa,
}

impl Certs {
    pub fn new() -> Certs {
        Certs {
            dir: tempfile::tempdir().expect("tempdir"),
            ca: TestCa::root("tlsrelay MTA-STS lab CA", Key::P256),
        }
    }

    /// A test-CA leaf for `names`, served with its CA: (chain, key).
    pub fn chain(&self, names: &[&str]) -> (String, String) {
        let leaf = self.ca.leaf(&Spec::new(names, Key::P256));
        (format!("{}{}", leaf.cert_pem, self.ca.pem()), leaf.key_pem)
    }

    /// The policy server's chain: `names` and [`LAB_CHECK`], the host
    /// the lab check fetches.
    pub fn policy_chain(&self, names: &[&str]) -> (String, String) {
        let mut all = names.to_vec();
        all.push(LAB_CHECK);
        self.chain(&all)
    }

    /// Writes `pem` under `name`; its path.
    fn file(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).expect("write certificate file");
        path
    }
}

/// One MX host and what answers for it.
pub struct Mx {
    pub host: String,
    pub ip: String,
    pub rx: Rx,
    postfix: Option<Postfix>,
    proxy: Option<StripProxy>,
    plain: Option<Receiver>,
}

impl Mx {
    /// Starts the receiver `rx` for `host` of `domain` on `ip`:`port`;
    /// a Strip's Postfix listens on `back_ip`.
    pub fn start(
        certs: &Certs,
        domain: &str,
        host: &str,
        rx: Rx,
        (ip, back_ip): (&str, &str),
        port: u16,
    ) -> Mx {
        let postfix_on = |listen: &str, (chain, key): (String, String)| {
            let tag = format!("{listen}-{host}");
            PostfixOptions::new()
                .hostname(host)
                .listen_ip(listen.parse::<Ipv4Addr>().expect("ip"))
                .smtp_port(port)
                .starttls(
                    certs.file(&format!("{tag}.crt"), &chain),
                    certs.file(&format!("{tag}.key"), &key),
                )
                .maildir_domains(&[domain])
                .main_cf("smtpd_tls_received_header", "yes")
                .start()
        };
        let mut mx = Mx {
            host: host.into(),
            ip: ip.into(),
            rx,
            postfix: None,
            proxy: None,
            plain: None,
        };
        match rx {
            Rx::Good => mx.postfix = Some(postfix_on(ip, certs.chain(&[host]))),
            Rx::WrongName => {
                mx.postfix = Some(postfix_on(ip, certs.chain(&["mx.elsewhere.test"])));
            }
            Rx::SelfSigned => {
                let Issued {
                    cert_pem, key_pem, ..
                } = self_signed(&Spec::new(&[host], Key::P256));
                mx.postfix = Some(postfix_on(ip, (cert_pem, key_pem)));
            }
            Rx::Strip => {
                let back = postfix_on(back_ip, certs.chain(&[host]));
                let listener = TcpListener::bind((ip, port)).expect("bind proxy");
                mx.proxy = Some(StripProxy::on(listener, back.smtp_addr()));
                mx.postfix = Some(back);
            }
            Rx::Plain => {
                let listener = TcpListener::bind((ip, port)).expect("bind receiver");
                mx.plain = Some(Receiver::on(listener));
            }
        }
        mx
    }

    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip.parse().expect("ip"), port)
    }

    /// Connections made to this host's address (for Strip: to the proxy).
    pub fn connections(&self) -> usize {
        match (&self.proxy, &self.plain, &self.postfix) {
            (Some(proxy), _, _) => proxy.sent().len(),
            (_, Some(plain), _) => plain.seen().connections,
            (_, _, Some(postfix)) => postfix.connections(),
            _ => 0,
        }
    }

    /// [`Mx::connections`] once it holds still: Postfix writes its log
    /// through postlogd, so a `connect from` line may come a little after
    /// the connection. Two equal reads 300 ms apart (bounded, 5 s).
    pub fn settled_connections(&self) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut last = self.connections();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(300));
            let now = self.connections();
            if now == last || std::time::Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }

    /// The messages stored here, each with whether it came over TLS.
    pub fn delivered(&self) -> Vec<(String, bool)> {
        if let Some(plain) = &self.plain {
            return plain
                .seen()
                .delivered()
                .iter()
                .map(|t| (t.content(), false))
                .collect();
        }
        let Some(postfix) = &self.postfix else {
            return Vec::new();
        };
        postfix
            .delivered()
            .into_iter()
            .map(|m| {
                let tls = first_received(&m).contains("(using TLSv");
                (m, tls)
            })
            .collect()
    }

    /// The messages stored here that contain `secret`, each as whether it
    /// came over TLS. With `wait`, first waits (bounded, 10 s) for one:
    /// the relay is done at the server's `250`, the maildir a little later.
    pub fn stored(&self, secret: &str, wait: bool) -> Vec<bool> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let stored: Vec<bool> = self
                .delivered()
                .iter()
                .filter(|(m, _)| m.contains(secret))
                .map(|(_, tls)| *tls)
                .collect();
            if !wait || !stored.is_empty() || std::time::Instant::now() > deadline {
                return stored;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Everything a client sent here before any TLS, as text: the
    /// proxy's record, the plain receiver's transactions, or Postfix's
    /// sessions that had a mail command without STARTTLS.
    pub fn plaintext(&self) -> String {
        if let Some(proxy) = &self.proxy {
            return proxy
                .sent()
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect();
        }
        if let Some(plain) = &self.plain {
            return plain
                .seen()
                .transactions
                .iter()
                .map(|t| {
                    format!(
                        "MAIL FROM:<{}> {:?} {}",
                        t.mail_from,
                        t.rcpt_to,
                        t.content()
                    )
                })
                .collect();
        }
        self.sessions()
            .iter()
            .filter(|s| s.plaintext_mail())
            .map(|s| format!("{:?}\n", s.counts))
            .collect()
    }

    /// Postfix's session summaries (the one behind a proxy too).
    pub fn sessions(&self) -> Vec<SessionSummary> {
        self.postfix
            .as_ref()
            .map(Postfix::sessions)
            .unwrap_or_default()
    }

    /// Postfix's log (the one behind a proxy too), for failure messages.
    pub fn log(&self) -> String {
        self.postfix.as_ref().map(Postfix::log).unwrap_or_default()
    }

    /// The receiver answers, and offers STARTTLS unless it should not.
    pub fn check(&self, port: u16) {
        let (mut client, greeting) = Client::connect(self.addr(port));
        assert!(greeting.starts_with("220"), "{}: {greeting}", self.host);
        let ehlo = client.command("EHLO harness.test");
        client.command("QUIT");
        let offers = !matches!(self.rx, Rx::Strip | Rx::Plain);
        assert_eq!(ehlo.contains("STARTTLS"), offers, "{}: {ehlo}", self.host);
    }
}

/// A port free on every address of the namespace (all are ours).
pub fn lab_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local_addr").port()
}

/// The zone lines of `domain` with MX hosts `(preference, mx)`, an
/// `_mta-sts` record with `id` (none: no policy), the policy host on
/// 127.0.0.1 and a TLS-RPT record.
pub fn zone(domain: &str, mx: &[(u16, &Mx)], id: Option<&str>) -> String {
    let mut text = String::new();
    for (preference, host) in mx {
        text.push_str(&format!("{domain}. MX {preference} {}.\n", host.host));
        text.push_str(&format!("{}. A {}\n", host.host, host.ip));
    }
    if let Some(id) = id {
        text.push_str(&format!("_mta-sts.{domain}. TXT \"v=STSv1; id={id}\"\n"));
    }
    text.push_str(&format!("mta-sts.{domain}. A 127.0.0.1\n"));
    text.push_str(&format!(
        "_smtp._tls.{domain}. TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports.test\"\n"
    ));
    text
}

/// The relay's configuration: MX routing to `mx_port`, the lab's DNS,
/// one attempt per message until a test retries it, MTA-STS with the
/// lab CA (`ca.pem` beside it) and the policy server's port, TLS-RPT on.
pub fn relay_config(mx_port: u16, dns: SocketAddr, https_port: u16) -> String {
    format!(
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [queue]\nretry_intervals = [\"1h\"]\n\
         [delivery]\nmx_port = {mx_port}\nconnect_timeout = \"4s\"\n\
         {}\
         [mta_sts]\nenabled = true\nca_file = \"ca.pem\"\nhttps_port = {https_port}\nfetch_timeout = \"5s\"\n\
         [tls_rpt]\nenabled = true\norganization_name = \"tlsrelay MTA-STS lab\"\n\
         contact_info = \"mailto:postmaster@relay.example.test\"\n",
        crate::support::dns::dns_section(dns)
    )
}

/// A relay on [`relay_config`] with the lab CA beside it as `ca.pem`.
pub fn start_relay(certs: &Certs, mx_port: u16, dns: SocketAddr, https_port: u16) -> Relay {
    let ca = certs.ca.pem().to_string();
    let config = relay_config(mx_port, dns, https_port);
    Relay::start_with_files(&config, &[("ca.pem", &ca)])
}
