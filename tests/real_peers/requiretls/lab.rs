//! The REQUIRETLS lab: next hops of every kind a flagged message meets,
//! each on its own address of one port inside the test's network
//! namespace (the MTA-STS lab's `Certs`, addresses and Postfix `Mx`), so
//! that whatever arrives, and any connection at all, belongs to one host
//! of one cell.
//!
//! * [`Hop::Rt`]: the scripted receiver on OpenSSL that offers
//!   REQUIRETLS after STARTTLS, with a test-CA certificate naming the
//!   host: the one hop a flagged message may take;
//! * [`Hop::RtSelfSigned`]: the same with a self-signed certificate that
//!   names the host (verified only by DANE `3 1 1`);
//! * [`Hop::RtSilent`]: self-signed, STARTTLS, never REQUIRETLS;
//! * [`Hop::Plain`]: no STARTTLS; REQUIRETLS listed in plaintext or not;
//! * [`Hop::Postfix`]: Postfix 3.7, a test-CA certificate naming the
//!   host: verified, but without REQUIRETLS;
//! * [`Hop::Strip`]: the STARTTLS-stripping proxy in front of an `Rt`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::mta_sts::lab::{Certs, Mx, Rx};
use crate::support::ca::{self_signed, Issued, Key, Spec};
use crate::support::dane_lab::StripProxy;
use crate::support::requiretls_receiver::{
    is_mail_command, Offer, Options, RequireTlsReceiver, Session,
};
use crate::support::smtp::Client;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    Rt,
    RtSelfSigned,
    RtSilent,
    /// No STARTTLS; `true`: REQUIRETLS listed in plaintext all the same.
    Plain(bool),
    Postfix,
    Strip,
}

/// A message as a far side stored it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Got {
    pub tls: bool,
    /// Whether MAIL carried REQUIRETLS (`None`: Postfix does not say).
    pub requiretls: Option<bool>,
}

/// One started hop.
pub struct Far {
    pub hop: Hop,
    pub host: String,
    pub ip: String,
    /// The self-signed certificate an `RtSelfSigned`/`RtSilent` serves.
    pub cert: Option<Issued>,
    rt: Option<RequireTlsReceiver>,
    postfix: Option<Mx>,
    proxy: Option<StripProxy>,
}

impl Far {
    /// Starts `hop` for `host` of `domain` on `ip`:`port`; the receiver
    /// behind a `Strip` listens on `back`.
    pub fn start(
        certs: &Certs,
        domain: &str,
        host: &str,
        hop: Hop,
        (ip, back): (&str, &str),
        port: u16,
    ) -> Far {
        let mut far = Far {
            hop,
            host: host.into(),
            ip: ip.into(),
            cert: None,
            rt: None,
            postfix: None,
            proxy: None,
        };
        let rt = |ip: &str, tls: Option<(String, String)>, offer: Offer| {
            RequireTlsReceiver::start(ip, port, &Options { tls, offer })
        };
        match hop {
            Hop::Rt => far.rt = Some(rt(ip, Some(certs.chain(&[host])), Offer::AfterTls)),
            Hop::RtSelfSigned | Hop::RtSilent => {
                let issued = self_signed(&Spec::new(&[host], Key::P256));
                let offer = match hop {
                    Hop::RtSilent => Offer::Never,
                    _ => Offer::AfterTls,
                };
                let pair = (issued.cert_pem.clone(), issued.key_pem.clone());
                far.rt = Some(rt(ip, Some(pair), offer));
                far.cert = Some(issued);
            }
            Hop::Plain(offers) => {
                let offer = if offers { Offer::Always } else { Offer::Never };
                far.rt = Some(rt(ip, None, offer));
            }
            Hop::Postfix => {
                far.postfix = Some(Mx::start(certs, domain, host, Rx::Good, (ip, back), port))
            }
            Hop::Strip => {
                let behind = rt(back, Some(certs.chain(&[host])), Offer::AfterTls);
                let listener = TcpListener::bind((ip, port)).expect("bind proxy");
                far.proxy = Some(StripProxy::on(listener, behind.addr));
                far.rt = Some(behind);
            }
        }
        far
    }

    /// The scripted receiver's sessions (behind a proxy too).
    fn sessions(&self) -> Vec<Session> {
        self.rt
            .as_ref()
            .map(RequireTlsReceiver::sessions)
            .unwrap_or_default()
    }

    /// Connections made to the host's address (to the proxy for `Strip`).
    pub fn connections(&self) -> usize {
        match (&self.proxy, &self.postfix) {
            (Some(proxy), _) => proxy.sent().len(),
            (_, Some(postfix)) => postfix.settled_connections(),
            _ => self.sessions().len(),
        }
    }

    /// Every mail command (MAIL, RCPT, DATA, BDAT) the far side got, in
    /// plaintext or over TLS; for Postfix, the session summaries that
    /// count one.
    pub fn mail_commands(&self) -> Vec<String> {
        let mut commands: Vec<String> = self
            .sessions()
            .iter()
            .flat_map(Session::mail_commands)
            .collect();
        if let Some(proxy) = &self.proxy {
            for sent in proxy.sent() {
                let text = String::from_utf8_lossy(&sent).into_owned();
                commands.extend(
                    text.lines()
                        .filter(|l| is_mail_command(l))
                        .map(str::to_string),
                );
            }
        }
        if let Some(postfix) = &self.postfix {
            // A session still open was not ended with QUIT: it may hold a
            // transaction its summary would show.
            let deadline = Instant::now() + Duration::from_secs(3);
            while postfix.sessions().len() < postfix.connections() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let open = postfix.connections() - postfix.sessions().len().min(postfix.connections());
            if open > 0 {
                commands.push(format!("postfix: {open} session(s) still open"));
            }
            for session in postfix.sessions() {
                if ["mail", "rcpt", "data", "bdat"]
                    .iter()
                    .any(|c| session.has(c))
                {
                    commands.push(format!("postfix session {:?}", session.counts));
                }
            }
        }
        commands
    }

    /// Everything that reached the far side in the clear, as text.
    pub fn clear_text(&self) -> String {
        let mut text = String::new();
        for session in self.sessions() {
            text.extend(session.plaintext.iter().map(|l| format!("{l}\r\n")));
            text.extend(
                session
                    .messages
                    .iter()
                    .filter(|m| !m.tls)
                    .map(|m| m.data.clone()),
            );
        }
        if let Some(proxy) = &self.proxy {
            text.extend(
                proxy
                    .sent()
                    .iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned()),
            );
        }
        if let Some(postfix) = &self.postfix {
            text.push_str(&postfix.plaintext());
        }
        text
    }

    /// The messages stored here that contain `secret`. With `wait`, first
    /// waits (bounded, 10 s) for one.
    pub fn stored(&self, secret: &str, wait: bool) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got: Vec<Got> = match &self.postfix {
                Some(postfix) => postfix
                    .stored(secret, false)
                    .into_iter()
                    .map(|tls| Got {
                        tls,
                        requiretls: None,
                    })
                    .collect(),
                None => self
                    .rt
                    .iter()
                    .flat_map(RequireTlsReceiver::messages)
                    .filter(|m| m.data.contains(secret))
                    .map(|m| Got {
                        tls: m.tls,
                        requiretls: Some(m.requiretls()),
                    })
                    .collect(),
            };
            if !wait || !got.is_empty() || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The scripted receiver itself (the one behind a proxy too).
    pub fn receiver(&self) -> Option<&RequireTlsReceiver> {
        self.rt.as_ref()
    }

    /// The host answers, and offers STARTTLS unless it should not.
    pub fn check(&self, port: u16) {
        let addr = std::net::SocketAddr::new(self.ip.parse().expect("ip"), port);
        let (mut client, greeting) = Client::connect(addr);
        assert!(greeting.starts_with("220"), "{}: {greeting}", self.host);
        let ehlo = client.command("EHLO harness.test");
        client.command("QUIT");
        let offers = !matches!(self.hop, Hop::Strip | Hop::Plain(_));
        assert_eq!(ehlo.contains("STARTTLS"), offers, "{}: {ehlo}", self.host);
    }

    /// For failure messages: Postfix's log or the receiver's sessions.
    pub fn describe(&self) -> String {
        match &self.postfix {
            Some(postfix) => postfix.log(),
            None => format!("{:#?}", self.sessions()),
        }
    }
}
