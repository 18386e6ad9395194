//! The TLS ladder to one server address (DESIGN.md §5): connect, greeting
//! and EHLO; the policy's answer; STARTTLS, the handshake of the rung,
//! EHLO again over TLS (RFC 3207 §4.2); the policy's answer again; on a
//! failed rung (opportunistic only) the next one, on a new connection.
//!
//! Delivery and `probe` both climb it: it ends with a client ready for
//! MAIL, or with why not, and tells an [`Observer`] each step. Delivery's
//! observer logs and feeds the broken-TLS memory; probe's writes its report
//! and sends no mail. The policy decides every step; this only does them.
//!
//! Under DANE (DESIGN.md §5b) the ladder climbs as the level `dane`
//! ([`Ladder::level`]): one TLS rung, no plaintext, no broken-TLS memory;
//! with usable TLSA records the handshake itself authenticates the server
//! ([`ServerVerifier::dane`], SNI the MX host), so a server that fails it hears no
//! SMTP over that TLS at all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::client::{Client, Phase, StartTls};
use super::connector::Connector;
use super::dane::Mandatory;
use super::policy::{
    self, AfterEhlo, AfterFailure, AfterHandshake, Deferral, Failure, Note, Plaintext, Rung, Start,
};
use super::route::Hop;
use super::stream::Stream;
use crate::config::domain::MailDomain;
use crate::config::values::{Host, TlsLevel};
use crate::tls::certs::Identity;
use crate::tls::client::{config as tls_config, config_verifying, Negotiated, ServerVerifier};
use crate::tls::trust::TrustStore;

pub use super::observer::{Channel, Handshake, Observer};

/// How the ready connection is protected.
#[derive(Clone, Debug)]
pub enum How {
    Plaintext(Plaintext),
    Tls { negotiated: Negotiated, note: Note },
}

impl How {
    /// The attempt log's `tls` field.
    pub fn summary(&self) -> String {
        match self {
            How::Plaintext(why) => why.to_string(),
            How::Tls { negotiated, note } => format!(
                "{} {} key-exchange {} {note}",
                negotiated.version,
                negotiated.cipher,
                negotiated.group.as_deref().unwrap_or("unknown")
            ),
        }
    }

    /// The attempt log's `dane=` word and TLSA usage, when DANE made this
    /// connection.
    pub fn dane(&self) -> Option<(&'static str, Option<u8>)> {
        match self {
            How::Tls {
                note: Note::DaneVerified { usage },
                ..
            } => Some(("verified", Some(*usage))),
            How::Tls {
                note: Note::DaneEncryptOnly,
                ..
            } => Some(("encrypt-only", None)),
            _ => None,
        }
    }

    pub fn channel(&self) -> Channel {
        match self {
            How::Plaintext(why) if why.is_fallback() => Channel::Fallback,
            How::Plaintext(_) => Channel::Plaintext,
            How::Tls { negotiated, .. } => Channel::Tls {
                version: negotiated.version.clone(),
                cipher: negotiated.cipher.clone(),
            },
        }
    }
}

/// A connection the policy lets the mail go over, EHLO answered.
pub struct Ready {
    pub client: Client<Stream>,
    pub how: How,
}

/// Why the ladder ended without a connection to send on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// TCP connect, greeting or EHLO failed: try the next address.
    Unreachable(String),
    /// The policy said no: try the next address, then keep the mail.
    Deferred(Deferral),
}

/// The ladder to one address of one hop, under one connector.
pub struct Ladder<'a> {
    /// Our EHLO name.
    pub hostname: &'a str,
    pub connect_timeout: Duration,
    /// Multiplies the SMTP phase timeouts (tests shorten them).
    pub timeout_scale: f64,
    /// `[delivery] opportunistic_fallback`.
    pub fallback: bool,
    /// Our client certificate, for a connector with `client_cert`.
    pub identity: Option<&'a Identity>,
    pub connector: &'a Connector,
    /// The recipient domain (for `verify-domain`).
    pub domain: &'a MailDomain,
    pub hop: &'a Hop,
    pub addr: SocketAddr,
    /// What DANE makes mandatory for this host; `None`: the connector's
    /// level governs.
    pub dane: Option<&'a Mandatory>,
    /// Under an MTA-STS `enforce` policy (and no DANE): the anchors the
    /// certificate must chain to (webpki roots plus `[mta_sts] ca_file`).
    pub sts: Option<&'a TrustStore>,
    /// The message is flagged REQUIRETLS (RFC 8689) and the connector
    /// enforces it: where neither DANE nor MTA-STS governs and the
    /// connector's level does not authenticate the server, the ladder
    /// climbs as `verify-host` (`super::requiretls`).
    pub requiretls: bool,
}

impl Ladder<'_> {
    /// The level the policy applies: `dane` where DANE governs the host
    /// (DESIGN.md §5b), else the connector's.
    pub fn level(&self) -> TlsLevel {
        match (self.dane, self.sts) {
            (Some(_), _) => TlsLevel::Dane,
            // MTA-STS enforce: TLS mandatory, the MX host named.
            (None, Some(_)) => TlsLevel::VerifyHost,
            (None, None) if self.raised() => TlsLevel::VerifyHost,
            (None, None) => self.connector.level(),
        }
    }

    /// Whether REQUIRETLS raised the connector's level to `verify-host`.
    fn raised(&self) -> bool {
        self.requiretls
            && self.dane.is_none()
            && self.sts.is_none()
            && !super::requiretls::level_authenticates(self.connector.level())
    }

    /// A deferral as the policy in force says it: under MTA-STS, or a
    /// level REQUIRETLS raised, naming it.
    fn judged(&self, deferral: Deferral) -> Deferral {
        match self.sts {
            Some(_) => Deferral::MtaSts(Box::new(deferral)),
            None if self.raised() => Deferral::RequireTls(Box::new(deferral)),
            None => deferral,
        }
    }

    /// Down the ladder from `start` until the policy lets the mail go or
    /// says no; one new connection per rung.
    pub async fn climb(&self, start: &Start, observer: &mut impl Observer) -> Result<Ready, Stop> {
        let level = self.level();
        let mut rung = start.rung;
        loop {
            let client = match self.connect().await {
                Ok(client) => client,
                Err(reason) => {
                    observer.connect_failed(&reason);
                    return Err(Stop::Unreachable(reason));
                }
            };
            observer.greeted(rung, &client.capabilities);
            let memory_start = rung == start.rung && !start.skipped.is_empty();
            match policy::after_ehlo(level, rung, memory_start, client.capabilities.starttls) {
                AfterEhlo::Plaintext(why) => {
                    let how = How::Plaintext(why);
                    return Ok(Ready { client, how });
                }
                AfterEhlo::Defer(deferral) => {
                    let deferral = self.judged(deferral);
                    client.quit().await;
                    observer.deferred(&deferral, &Channel::DeferredForPolicy);
                    return Err(Stop::Deferred(deferral));
                }
                AfterEhlo::StartTls => {}
            }
            let failure = match self.upgrade(client, rung, observer).await {
                Ok((client, handshake)) => {
                    observer.upgraded(rung, &handshake);
                    return self.after_handshake(client, handshake, observer).await;
                }
                Err(failure) => failure,
            };
            let next = policy::after_failure(level, rung, self.fallback, &failure);
            observer.rung_failed(rung, &failure, &next);
            match next {
                AfterFailure::NextRung(lower) => rung = lower,
                AfterFailure::Defer(deferral) => {
                    let deferral = self.judged(deferral);
                    let channel = match failure {
                        Failure::RefusedAfterTls(_) => Channel::RefusedAfterTls,
                        Failure::Handshake(_) => Channel::DeferredForPolicy,
                    };
                    observer.deferred(&deferral, &channel);
                    return Err(Stop::Deferred(deferral));
                }
            }
        }
    }

    async fn after_handshake(
        &self,
        client: Client<Stream>,
        handshake: Handshake,
        observer: &mut impl Observer,
    ) -> Result<Ready, Stop> {
        let decided = match self.dane {
            Some(mandatory) => policy::after_dane_handshake(mandatory, handshake.dane.as_ref()),
            None => policy::after_handshake(self.level(), &handshake.checks),
        };
        match decided {
            AfterHandshake::Deliver(note) => Ok(Ready {
                client,
                how: How::Tls {
                    negotiated: handshake.negotiated,
                    note,
                },
            }),
            AfterHandshake::Defer(deferral) => {
                let deferral = self.judged(deferral);
                client.quit().await;
                observer.deferred(&deferral, &Channel::DeferredForPolicy);
                Err(Stop::Deferred(deferral))
            }
        }
    }

    fn client(&self, stream: Stream) -> Client<Stream> {
        let mut client = Client::new(stream);
        client.timeout_scale = self.timeout_scale;
        client
    }

    /// TCP connect, greeting, EHLO: a client ready for the policy's question.
    pub async fn connect(&self) -> Result<Client<Stream>, String> {
        let connect = TcpStream::connect(self.addr);
        let tcp = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(format!("connect: {e}")),
            Err(_) => {
                return Err(format!(
                    "connect: no answer within {:?}",
                    self.connect_timeout
                ))
            }
        };
        let _ = tcp.set_nodelay(true);
        let mut client = self.client(Stream::Plain(tcp));
        let greeting = client
            .reply(Phase::Greeting)
            .await
            .map_err(|e| e.to_string())?;
        if greeting.code != 220 {
            client.quit().await;
            return Err(format!("greeting: {}", greeting.summary()));
        }
        match client.hello(self.hostname).await {
            Ok(reply) if reply.is_positive() => Ok(client),
            Ok(reply) => Err(format!("EHLO: {}", reply.summary())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// STARTTLS, the handshake of `rung`, then EHLO again over TLS (RFC
    /// 3207 §4.2). A refused EHLO, or a connection closed instead of an
    /// answer, is [`Failure::RefusedAfterTls`]: that is how a TLS 1.3
    /// server that wants a client certificate says so.
    async fn upgrade(
        &self,
        client: Client<Stream>,
        rung: Rung,
        observer: &mut impl Observer,
    ) -> Result<(Client<Stream>, Handshake), Failure> {
        let stream = match client.starttls().await {
            Ok(StartTls::Ready(stream)) => stream,
            Ok(StartTls::Refused { reply, client }) => {
                client.quit().await;
                let refused = format!("STARTTLS refused: {}", reply.summary());
                return Err(Failure::Handshake(refused));
            }
            Err(e) => return Err(Failure::Handshake(e.to_string())),
        };
        let tcp = stream
            .into_plain()
            .ok_or_else(|| Failure::Handshake("STARTTLS inside TLS".into()))?;
        let (stream, handshake) = self.handshake(tcp, rung, observer).await?;
        let mut client = self.client(stream);
        let what = match client.hello(self.hostname).await {
            Ok(reply) if reply.is_positive() => return Ok((client, handshake)),
            Ok(reply) => {
                let refused = format!("EHLO refused: {}", reply.summary());
                client.quit().await;
                refused
            }
            Err(e) => format!("EHLO: {e}"),
        };
        let negotiated = &handshake.negotiated;
        Err(Failure::RefusedAfterTls(format!(
            "{} {}, then {what}",
            negotiated.version, negotiated.cipher
        )))
    }

    /// The TLS handshake of one rung, then what the certificate is worth.
    /// Under DANE with usable records the handshake fails unless they
    /// authenticate the server; `observer` hears what they made of it.
    async fn handshake(
        &self,
        tcp: TcpStream,
        rung: Rung,
        observer: &mut impl Observer,
    ) -> Result<(Stream, Handshake), Failure> {
        let settings = &self.connector.settings;
        let versions = policy::tls_versions(rung, settings.min_tls_version)?;
        let identity = self.identity.filter(|_| settings.client_cert);
        let failed = |what: String| Failure::Handshake(what);
        let verifier = match self.dane {
            Some(Mandatory::Authenticate(records)) => {
                // RFC 7672 §3.2.2: the MX host, then the next-hop domain.
                let names = [self.hop.host.to_string(), self.domain.to_string()];
                Some((
                    records,
                    Arc::new(ServerVerifier::dane(records.clone(), names.into())),
                ))
            }
            _ => None,
        };
        let config = match &verifier {
            Some((_, verifier)) => config_verifying(versions, identity, verifier.clone()),
            None => tls_config(versions, identity),
        }
        .map_err(|e| failed(format!("TLS setup: {e}")))?;
        let name = match &self.hop.host {
            Host::Name(name) => {
                ServerName::try_from(name.to_string()).map_err(|e| failed(e.to_string()))?
            }
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
        };
        let connect = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
        let connected = tokio::time::timeout(self.connect_timeout, connect).await;
        let presented = verifier.as_ref().and_then(|(records, verifier)| {
            let presented = verifier.presented()?;
            observer.dane_checked(records, &presented);
            Some(presented)
        });
        let dane = presented.map(|p| p.result.map(|a| a.record.usage).map_err(|e| e.to_string()));
        if let (Some(Err(why)), Ok(Err(_))) = (&dane, &connected) {
            return Err(failed(format!(
                "the TLSA records do not authenticate it: {why}"
            )));
        }
        let tls = match connected {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                let reason = crate::tls::reason::io_reason(&e);
                return Err(failed(format!("handshake: {reason}")));
            }
            Err(_) => {
                let stalled = format!("handshake stalled past {:?}", self.connect_timeout);
                return Err(failed(stalled));
            }
        };
        let connection = tls.get_ref().1;
        let chain = connection.peer_certificates().unwrap_or_default().to_vec();
        let handshake = Handshake {
            negotiated: Negotiated::of(connection),
            checks: match self.sts {
                Some(trust) => super::sts::checks(trust, &chain, &self.hop.host),
                None => self.connector.checks(&chain, &self.hop.host, self.domain),
            },
            chain,
            dane,
        };
        Ok((Stream::Tls(Box::new(tls)), handshake))
    }
}
