//! One delivery attempt of one message: recipients grouped by domain,
//! each group routed, each hop's addresses tried in turn, the TLS policy
//! asked at every step, one log line per attempt (DESIGN.md §5).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::client::{Client, Phase};
use super::memory::TlsMemory;
use super::outcome::{deciding_reply, judge, Verdict};
use super::policy::{self, Checks, Failure, Rung, Step};
use super::route::{connector_for, hops, Hop, Hops, Resolve};
use crate::config::domain::MailDomain;
use crate::config::values::{DomainName, DomainPattern, Host, TlsLevel, TlsVersion};
use crate::config::{Config, OutboundConnector};
pub use crate::queue::delivery::RecipientOutcome;
use crate::queue::envelope::{Envelope, Recipient};
use crate::tls::certs::Identity;
use crate::tls::client::{config as tls_config, Negotiated};
use crate::tls::digest::sha256;
use crate::tls::trust::{check_name, TrustStore};

/// Everything attempts share: routing, TLS material, limits.
pub struct Deliverer<R> {
    pub hostname: String,
    pub connectors: Vec<OutboundConnector>,
    /// Trust per connector (same order), webpki roots plus its `ca_file`.
    trust: Vec<TrustStore>,
    default_trust: TrustStore,
    pub mx_port: u16,
    pub connect_timeout: Duration,
    pub fallback: bool,
    pub resolver: R,
    identity: Option<Arc<Identity>>,
    /// Where the opportunistic ladder starts for each server; the same
    /// one across reloads, and the control socket's.
    pub(crate) memory: Arc<TlsMemory>,
    /// `[delivery] max_connections_per_destination`, per host and port.
    per_destination: usize,
    destinations: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// Connections kept open after a message, by server, level and connector.
    idle: std::sync::Mutex<std::collections::HashMap<String, Vec<Idle>>>,
    /// Multiplies the SMTP phase timeouts (tests shorten them).
    pub timeout_scale: f64,
}

/// How long a connection may wait for the next message to its server.
const IDLE_LIMIT: Duration = Duration::from_secs(5);

type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// An open SMTP session, before or after STARTTLS.
enum Session {
    Plain(Client<TcpStream>),
    Tls(Box<Client<TlsStream>>),
}

impl Session {
    async fn quit(self) {
        match self {
            Session::Plain(client) => client.quit().await,
            Session::Tls(client) => client.quit().await,
        }
    }
}

/// A connection between messages, with what its TLS was.
struct Idle {
    session: Session,
    tls: String,
    channel: Channel,
    since: std::time::Instant,
}

/// What an attempt's TLS came to, as the metrics count it
/// (`tlsrelay_delivery_attempts_total`).
#[derive(Clone, Debug)]
enum Channel {
    Tls {
        version: String,
        cipher: String,
    },
    /// STARTTLS not offered, or `tls = "none"`.
    Plaintext,
    /// Opportunistic: TLS failed on every rung, the mail went in plaintext.
    Fallback,
    DeferredForPolicy,
    RungFailed,
    ConnectFailed,
    /// TLS worked, then the server refused EHLO (a missing client certificate).
    RefusedAfterTls,
}

impl Channel {
    /// The `tls`, `cipher` and `outcome` labels.
    fn labels(&self) -> (&str, &str, &'static str) {
        match self {
            Channel::Tls { version, cipher } => (version, cipher, "sent"),
            Channel::Plaintext => ("plaintext", "-", "sent"),
            Channel::Fallback => ("plaintext_fallback", "-", "sent"),
            Channel::DeferredForPolicy => ("-", "-", "deferred_for_policy"),
            Channel::RungFailed => ("-", "-", "tls_rung_failed"),
            Channel::ConnectFailed => ("-", "-", "connect_failed"),
            Channel::RefusedAfterTls => ("-", "-", "refused_after_tls"),
        }
    }
}

/// Why a hop gave no verdict, so the next one is tried.
struct Skip {
    status: &'static str,
    reason: String,
}

impl<R: Resolve> Deliverer<R> {
    pub fn new(
        config: &Config,
        resolver: R,
        identity: Option<Arc<Identity>>,
        memory: Arc<TlsMemory>,
    ) -> Result<Self, String> {
        let mut trust = Vec::new();
        for connector in &config.outbound {
            let paths: Vec<_> = connector.ca_file.iter().cloned().collect();
            trust.push(TrustStore::with_ca_files(&paths).map_err(|e| e.to_string())?);
        }
        Ok(Deliverer {
            hostname: config.server.hostname.to_string(),
            connectors: config.outbound.clone(),
            trust,
            default_trust: TrustStore::webpki_roots(),
            mx_port: config.delivery.mx_port,
            connect_timeout: config.delivery.connect_timeout.0,
            fallback: config.delivery.opportunistic_fallback,
            resolver,
            identity,
            memory,
            per_destination: config.delivery.max_connections_per_destination,
            destinations: Default::default(),
            idle: Default::default(),
            timeout_scale: config.delivery.phase_timeout_scale,
        })
    }

    /// Tries every pending recipient once; returns one outcome each.
    pub async fn attempt(
        &self,
        queue_id: &str,
        envelope: &Envelope,
        content: &[u8],
        pending: &[&Recipient],
    ) -> Vec<RecipientOutcome> {
        let mut by_domain: BTreeMap<String, Vec<&Recipient>> = BTreeMap::new();
        for recipient in pending {
            let domain = recipient.address.rsplit_once('@').map_or("", |(_, d)| d);
            // One group per canonical domain: `bücher.test` and
            // `xn--bcher-kva.test` are one destination.
            let key = domain
                .parse::<MailDomain>()
                .map_or_else(|_| domain.to_string(), |d| d.to_string());
            by_domain.entry(key).or_default().push(recipient);
        }
        let mut outcomes = Vec::new();
        for (domain, group) in by_domain {
            outcomes.extend(
                self.attempt_domain(queue_id, envelope, content, &domain, &group)
                    .await,
            );
        }
        outcomes
    }

    async fn attempt_domain(
        &self,
        queue_id: &str,
        envelope: &Envelope,
        content: &[u8],
        domain: &str,
        group: &[&Recipient],
    ) -> Vec<RecipientOutcome> {
        let all = |verdict: Verdict, remote: Option<String>| {
            group
                .iter()
                .map(|r| RecipientOutcome {
                    address: r.address.clone(),
                    verdict: verdict.clone(),
                    remote_mta: remote.clone(),
                    ip: None,
                    tls: None,
                })
                .collect::<Vec<_>>()
        };
        let Ok(domain_name) = domain.parse::<MailDomain>() else {
            return all(
                Verdict::failed("5.1.2", format!("invalid recipient domain {domain:?}")),
                None,
            );
        };
        let route = self.route(&domain_name);
        let hop_list = match hops(
            &self.resolver,
            route.connector,
            &domain_name,
            self.mx_port,
            crate::random::shuffle,
        )
        .await
        {
            Ok(Hops::Try(list)) => list,
            Ok(Hops::Fail { status, reason }) => return all(Verdict::failed(status, reason), None),
            Err(e) => return all(Verdict::deferred("4.4.3", e.to_string()), None),
        };
        let mut last = Skip {
            status: "4.4.1",
            reason: format!("no host for {domain} could be reached"),
        };
        for hop in &hop_list {
            let addresses = match &hop.host {
                Host::Ip(ip) => vec![*ip],
                Host::Name(name) => match self.resolver.addresses(name.as_str()).await {
                    Ok(list) if !list.is_empty() => list,
                    Ok(_) => {
                        last = Skip {
                            status: "4.4.4",
                            reason: format!("{name} has no address"),
                        };
                        continue;
                    }
                    Err(e) => {
                        last = Skip {
                            status: "4.4.3",
                            reason: e.to_string(),
                        };
                        continue;
                    }
                },
            };
            for ip in addresses {
                match self
                    .attempt_host(queue_id, envelope, content, group, &route, hop, ip)
                    .await
                {
                    Ok((verdicts, tls)) => {
                        let remote = Some(hop.host.to_string());
                        return group
                            .iter()
                            .zip(verdicts)
                            .map(|(r, verdict)| RecipientOutcome {
                                address: r.address.clone(),
                                verdict,
                                remote_mta: remote.clone(),
                                ip: Some(SocketAddr::new(ip, hop.port)),
                                tls: Some(tls.clone()),
                            })
                            .collect();
                    }
                    Err(skip) => last = skip,
                }
            }
        }
        all(Verdict::deferred(last.status, last.reason), None)
    }

    /// One host address, down the ladder as the policy says.
    #[allow(clippy::too_many_arguments)]
    async fn attempt_host(
        &self,
        queue_id: &str,
        envelope: &Envelope,
        content: &[u8],
        group: &[&Recipient],
        route: &Route<'_>,
        hop: &Hop,
        ip: IpAddr,
    ) -> Result<(Vec<Verdict>, String), Skip> {
        let level = route.connector.map_or(TlsLevel::Opportunistic, |c| c.tls);
        let host = hop.host.to_string();
        let addr = SocketAddr::new(ip, hop.port);
        // What the broken-TLS memory decided, once it was asked.
        let memory_note = std::sync::OnceLock::<String>::new();
        // Bounded: the configured connectors' names, `-` for the MX default.
        let connector = route.connector.map_or("-", |c| c.name.as_str());
        let log = |tls: &str, channel: &Channel, result: &str| {
            let (version, cipher, outcome) = channel.labels();
            crate::metrics::global().inc(
                "tlsrelay_delivery_attempts_total",
                &[
                    ("connector", connector),
                    ("level", &level.to_string()),
                    ("tls", version),
                    ("cipher", cipher),
                    ("outcome", outcome),
                ],
            );
            let recipients: Vec<&str> = group.iter().map(|r| r.address.as_str()).collect();
            tracing::info!(
                queue_id,
                recipients = %recipients.join(","),
                host = %host,
                ip = %addr,
                connector,
                tls_level = %level,
                tls,
                tls_memory = memory_note.get().map_or("-", String::as_str),
                result,
                "delivery attempt"
            );
        };
        // At most max_connections_per_destination at once to one host.
        let _slot = self
            .destination_slot(&format!("{host}:{}", hop.port))
            .acquire_owned()
            .await;
        let server = addr.to_string();
        let key = format!(
            "{server} {level} {}",
            route.connector.map_or("", |c| c.name.as_str())
        );
        if let Some(idle) = self.take(&key).await {
            let (summary, channel) = (idle.tls.clone(), idle.channel.clone());
            let (verdicts, back) = match idle.session {
                Session::Plain(client) => {
                    let (v, back) = converse(client, envelope, content, group, &host, |result| {
                        log(&format!("{summary} (reused)"), &channel, result)
                    })
                    .await;
                    (v, back.map(Session::Plain))
                }
                Session::Tls(client) => {
                    let (v, back) = converse(*client, envelope, content, group, &host, |result| {
                        log(&format!("{summary} (reused)"), &channel, result)
                    })
                    .await;
                    (v, back.map(|c| Session::Tls(Box::new(c))))
                }
            };
            if !verdicts.is_empty() {
                self.park(&key, back, summary.clone(), channel);
                return Ok((verdicts, format!("{summary} (reused)")));
            }
            // Its RSET, pipelined in front of MAIL, failed: the kept
            // connection had gone stale, nothing was sent; a new one.
        }
        let start = self.memory.start(level, self.fallback, &server);
        let _ = memory_note.set(start.note());
        let mut rung = start.rung;
        loop {
            let client = self.connect(addr).await.map_err(|reason| {
                log("-", &Channel::ConnectFailed, &reason);
                Skip {
                    status: "4.4.1",
                    reason: format!("{host} [{addr}]: {reason}"),
                }
            })?;
            match policy::after_ehlo(level, rung, client.capabilities.starttls) {
                Step::Plaintext => {
                    let why = if level == TlsLevel::None {
                        "plaintext (tls = none)"
                    } else if !client.capabilities.starttls {
                        "plaintext (STARTTLS not offered)"
                    } else if start.rung == Rung::Plaintext {
                        "plaintext (the broken-TLS memory skipped the TLS rungs)"
                    } else {
                        "plaintext (TLS failed on higher rungs)"
                    };
                    let channel = match client.capabilities.starttls && level != TlsLevel::None {
                        true => Channel::Fallback,
                        false => Channel::Plaintext,
                    };
                    let (mut verdicts, back) =
                        converse(client, envelope, content, group, &host, |result| {
                            log(why, &channel, result)
                        })
                        .await;
                    if matches!(channel, Channel::Fallback) {
                        verdicts = verdicts.into_iter().map(Verdict::after_fallback).collect();
                    }
                    self.park(&key, back.map(Session::Plain), why.to_string(), channel);
                    return Ok((verdicts, why.to_string()));
                }
                Step::Defer { code, reason } => {
                    client.quit().await;
                    log(
                        &format!("deferred: {reason}"),
                        &Channel::DeferredForPolicy,
                        "-",
                    );
                    return Err(Skip {
                        status: code,
                        reason: format!("{host}: {reason}"),
                    });
                }
                _ => {}
            }
            let (step, tls, channel) = match self.upgrade(client, hop, rung, route).await {
                Err(failure) => {
                    self.memory.failed(level, &server, &host, rung);
                    let step = policy::after_failure(level, rung, self.fallback, &failure);
                    let channel = match (&failure, &step) {
                        (Failure::RefusedAfterTls(_), _) => Channel::RefusedAfterTls,
                        (_, Step::NextRung) => Channel::RungFailed,
                        _ => Channel::DeferredForPolicy,
                    };
                    if step == Step::NextRung {
                        log(
                            &format!("TLS failed on rung {rung:?} ({failure}), trying lower"),
                            &channel,
                            "-",
                        );
                        rung = rung.below().unwrap_or(Rung::Plaintext);
                        continue;
                    }
                    (step, None, channel)
                }
                Ok(upgraded) => {
                    self.memory.succeeded(&server, rung);
                    let step = policy::after_handshake(level, &upgraded.checks);
                    (step, Some(upgraded), Channel::DeferredForPolicy)
                }
            };
            return match (step, tls) {
                (Step::Deliver { note }, Some(upgraded)) => {
                    let negotiated = upgraded.negotiated;
                    let kex = negotiated.group.as_deref().unwrap_or("unknown");
                    let summary = format!(
                        "{} {} key-exchange {kex} {note}",
                        negotiated.version, negotiated.cipher
                    );
                    let channel = Channel::Tls {
                        version: negotiated.version,
                        cipher: negotiated.cipher,
                    };
                    let (verdicts, back) =
                        converse(upgraded.client, envelope, content, group, &host, |result| {
                            log(&summary, &channel, result)
                        })
                        .await;
                    self.park(
                        &key,
                        back.map(|c| Session::Tls(Box::new(c))),
                        summary.clone(),
                        channel,
                    );
                    Ok((verdicts, summary))
                }
                (Step::Defer { code, reason }, tls) => {
                    if let Some(upgraded) = tls {
                        upgraded.client.quit().await;
                    }
                    log(&format!("deferred: {reason}"), &channel, "-");
                    Err(Skip {
                        status: code,
                        reason: format!("{host}: {reason}"),
                    })
                }
                (other, _) => Err(Skip {
                    status: "4.7.0",
                    reason: format!("{host}: unexpected TLS step {other:?}"),
                }),
            };
        }
    }

    /// An idle connection for `key` that still answers RSET, if any.
    async fn take(&self, key: &str) -> Option<Idle> {
        loop {
            let idle = self.idle.lock().ok()?.get_mut(key)?.pop()?;
            if idle.since.elapsed() > IDLE_LIMIT {
                tokio::spawn(idle.session.quit());
                continue;
            }
            let mut idle = idle;
            // Out of step (the server said more than it was asked) or
            // gone: dropped, the message gets a new connection.
            let alive = match &mut idle.session {
                Session::Plain(client) => client.ready_for_next().await,
                Session::Tls(client) => client.ready_for_next().await,
            };
            if alive {
                return Some(idle);
            }
        }
    }

    /// Closes (QUIT) the connections idle longer than the limit, so a
    /// server's session slots are not held for nothing.
    pub fn sweep_idle(&self) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        for list in idle.values_mut() {
            let (stale, fresh): (Vec<Idle>, Vec<Idle>) =
                list.drain(..).partition(|i| i.since.elapsed() > IDLE_LIMIT);
            *list = fresh;
            for old in stale {
                tokio::spawn(old.session.quit());
            }
        }
        idle.retain(|_, list| !list.is_empty());
    }

    /// Keeps a cleanly finished connection for the next message to the
    /// same server, or closes it when enough are kept already.
    /// A plaintext session after TLS failed is not kept: the next message
    /// tries TLS again, so a broken handshake buys no later plaintext.
    fn park(&self, key: &str, session: Option<Session>, tls: String, channel: Channel) {
        let Some(session) = session else { return };
        if matches!(channel, Channel::Fallback) {
            tokio::spawn(session.quit());
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let list = idle.entry(key.to_string()).or_default();
        if list.len() >= self.per_destination {
            drop(idle);
            tokio::spawn(session.quit());
            return;
        }
        list.push(Idle {
            session,
            tls,
            channel,
            since: std::time::Instant::now(),
        });
    }

    fn destination_slot(&self, destination: &str) -> Arc<tokio::sync::Semaphore> {
        let Ok(mut map) = self.destinations.lock() else {
            return Arc::new(tokio::sync::Semaphore::new(self.per_destination));
        };
        map.entry(destination.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_destination)))
            .clone()
    }

    /// The connector and trust anchors for mail to `domain`.
    pub(crate) fn route<'a>(&'a self, domain: &'a MailDomain) -> Route<'a> {
        let index = connector_for(&self.connectors, domain)
            .and_then(|c| self.connectors.iter().position(|x| std::ptr::eq(x, c)));
        Route {
            connector: index.map(|i| &self.connectors[i]),
            trust: index.map_or(&self.default_trust, |i| &self.trust[i]),
            domain,
        }
    }

    /// TCP connect, greeting, EHLO: a client ready for the policy's question.
    pub(crate) async fn connect(&self, addr: SocketAddr) -> Result<Client<TcpStream>, String> {
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
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
        let mut client = Client::new(tcp);
        client.timeout_scale = self.timeout_scale;
        let greeting = client
            .reply(super::client::Phase::Greeting)
            .await
            .map_err(|e| e.to_string())?;
        if greeting.code != 220 {
            client.quit().await;
            return Err(format!("greeting: {}", greeting.summary()));
        }
        match client.hello(&self.hostname).await {
            Ok(reply) if reply.is_positive() => Ok(client),
            Ok(reply) => Err(format!("EHLO: {}", reply.summary())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// STARTTLS, the handshake of `rung`, then EHLO again over TLS (RFC
    /// 3207 §4.2). A refused EHLO, or a connection closed instead of an
    /// answer, is [`Failure::RefusedAfterTls`]: that is how a TLS 1.3
    /// server that wants a client certificate says so. Delivery and
    /// `probe` both go through here, so `probe` predicts it.
    pub(crate) async fn upgrade(
        &self,
        client: Client<TcpStream>,
        hop: &Hop,
        rung: Rung,
        route: &Route<'_>,
    ) -> Result<Upgraded, Failure> {
        let stream = match client.starttls().await {
            Ok(Ok(stream)) => stream,
            Ok(Err((reply, plain))) => {
                plain.quit().await;
                let refused = format!("STARTTLS refused: {}", reply.summary());
                return Err(Failure::Handshake(refused));
            }
            Err(e) => return Err(Failure::Handshake(e.to_string())),
        };
        let (tls, checks) = self
            .handshake(stream, hop, rung, route)
            .await
            .map_err(Failure::Handshake)?;
        let negotiated = Negotiated::of(tls.get_ref().1);
        let chain: Vec<CertificateDer<'static>> = tls
            .get_ref()
            .1
            .peer_certificates()
            .unwrap_or_default()
            .to_vec();
        let mut client = Client::new(tls);
        client.timeout_scale = self.timeout_scale;
        let what = match client.hello(&self.hostname).await {
            Ok(reply) if reply.is_positive() => {
                return Ok(Upgraded {
                    client,
                    negotiated,
                    chain,
                    checks,
                })
            }
            Ok(reply) => {
                let refused = format!("EHLO refused: {}", reply.summary());
                client.quit().await;
                refused
            }
            Err(e) => format!("EHLO: {e}"),
        };
        Err(Failure::RefusedAfterTls(format!(
            "{} {}, then {what}",
            negotiated.version, negotiated.cipher
        )))
    }

    /// The TLS handshake of one rung, then what the certificate is worth.
    pub(crate) async fn handshake(
        &self,
        stream: TcpStream,
        hop: &Hop,
        rung: Rung,
        route: &Route<'_>,
    ) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Checks), String> {
        let minimum = route
            .connector
            .map_or(TlsVersion::Tls12, |c| c.min_tls_version);
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = match (rung, minimum) {
            (Rung::Modern, TlsVersion::Tls12) => {
                vec![&rustls::version::TLS13, &rustls::version::TLS12]
            }
            (Rung::Modern, TlsVersion::Tls13) => vec![&rustls::version::TLS13],
            (_, TlsVersion::Tls12) => vec![&rustls::version::TLS12],
            (_, TlsVersion::Tls13) => return Err("TLS 1.2 is below min_tls_version".into()),
        };
        let identity = match route.connector {
            Some(c) if c.client_cert => self.identity.as_deref(),
            _ => None,
        };
        let config = tls_config(&versions, identity).map_err(|e| format!("TLS setup: {e}"))?;
        let name = match &hop.host {
            Host::Name(name) => {
                ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?
            }
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
        };
        let connect = tokio_rustls::TlsConnector::from(config).connect(name, stream);
        let tls = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return Err(format!("handshake: {}", crate::tls::reason::io_reason(&e))),
            Err(_) => return Err(format!("handshake stalled past {:?}", self.connect_timeout)),
        };
        let chain: Vec<CertificateDer<'static>> = tls
            .get_ref()
            .1
            .peer_certificates()
            .unwrap_or_default()
            .to_vec();
        let checks = route.checks(&chain, &hop.host);
        Ok((tls, checks))
    }
}

/// A session upgraded to TLS on one rung, its EHLO answered.
pub(crate) struct Upgraded {
    pub(crate) client: Client<TlsStream>,
    pub(crate) negotiated: Negotiated,
    /// The server's certificates, leaf first.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) checks: Checks,
}

/// The routing facts an attempt's TLS checks need.
pub(crate) struct Route<'a> {
    pub(crate) connector: Option<&'a OutboundConnector>,
    pub(crate) trust: &'a TrustStore,
    pub(crate) domain: &'a MailDomain,
}

impl Route<'_> {
    /// Chain, name and pin, as the connector's level will read them.
    pub(crate) fn checks(&self, chain: &[CertificateDer<'_>], host: &Host) -> Checks {
        let Some(leaf) = chain.first() else {
            let none = Err("no certificate".to_string());
            return Checks {
                chain: none.clone(),
                host: none.clone(),
                domain: none,
                pinned: false,
            };
        };
        let chain_result = self
            .trust
            .verify_server_chain(chain, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string());
        let host_name = match host {
            Host::Name(name) => name.to_string(),
            Host::Ip(ip) => ip.to_string(),
        };
        let host = check_name(leaf, &host_name).map_err(|e| e.to_string());
        let patterns = self.connector.map_or(&[][..], |c| &c.tls_domains[..]);
        let domain = domain_names_match(leaf, patterns, self.domain);
        let pins = self.connector.map_or(&[][..], |c| &c.fingerprints[..]);
        let leaf_hash = sha256(leaf);
        let spki_hash = X509Certificate::from_der(leaf)
            .ok()
            .map(|(_, cert)| sha256(cert.public_key().raw));
        let pinned = pins
            .iter()
            .any(|pin| pin.0 == leaf_hash || Some(pin.0) == spki_hash);
        Checks {
            chain: chain_result,
            host,
            domain,
            pinned,
        }
    }
}

/// `verify-domain`: the certificate names one of `patterns`, or, when
/// none are configured, the recipient domain or one of its subdomains
/// (for an address literal: its IP address).
fn domain_names_match(
    leaf: &CertificateDer<'_>,
    patterns: &[crate::config::values::NamePattern],
    domain: &MailDomain,
) -> Result<(), String> {
    let presented: Vec<String> = X509Certificate::from_der(leaf)
        .map(|(_, cert)| crate::tls::x509::alt_names(&cert).dns)
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let ok = match (patterns, domain) {
        ([], MailDomain::Literal(ip)) => check_name(leaf, &ip.to_string()).is_ok(),
        ([], MailDomain::Name(domain)) => {
            check_name(leaf, domain.as_str()).is_ok()
                || presented.iter().any(|n| {
                    n.trim_start_matches("*.")
                        .parse::<DomainName>()
                        .is_ok_and(|n| n.is_within(domain))
                })
        }
        _ => patterns.iter().any(|pattern| match &pattern.0 {
            DomainPattern::Exact(name) => check_name(leaf, name.as_str()).is_ok(),
            DomainPattern::Subdomains(parent) => presented.iter().any(|n| {
                n == &format!("*.{parent}")
                    || n.split_once('.').is_some_and(|(label, rest)| {
                        !label.contains('*') && rest == parent.as_str()
                    })
            }),
            DomainPattern::Literal(_) | DomainPattern::Any => false,
        }),
    };
    if ok {
        return Ok(());
    }
    let wanted = match patterns {
        [] => format!("{domain} or its subdomains"),
        _ => patterns
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let names = if presented.is_empty() {
        "no DNS names".to_string()
    } else {
        presented.join(", ")
    };
    Err(format!("certificate for {names} not valid for {wanted}"))
}

/// The transaction on a ready client, judged per recipient; a broken
/// conversation defers everyone (the next attempt may use another host).
/// The client comes back when the conversation ended cleanly, for reuse.
/// No verdicts at all: a kept connection failed its RSET (sent in front of
/// MAIL), before anything of this message went out; try a new connection.
async fn converse<S>(
    mut client: Client<S>,
    envelope: &Envelope,
    content: &[u8],
    group: &[&Recipient],
    host: &str,
    log: impl Fn(&str),
) -> (Vec<Verdict>, Option<Client<S>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if envelope.smtputf8 && !client.capabilities.smtputf8 {
        log("refused: next hop lacks SMTPUTF8");
        let reason =
            format!("{host} does not support SMTPUTF8, which this message needs (RFC 6531)");
        let verdict = Verdict::failed("5.6.7", reason);
        return (vec![verdict; group.len()], Some(client));
    }
    if let Some(limit) = client.capabilities.size {
        if content.len() as u64 > limit {
            log("refused: message larger than the next hop's SIZE");
            let reason = format!(
                "{host} accepts at most {limit} bytes; the message has {}",
                content.len()
            );
            let verdict = Verdict::failed("5.3.4", reason);
            return (vec![verdict; group.len()], Some(client));
        }
    }
    match client.transaction(envelope, group, content).await {
        Ok(transaction) => {
            let verdicts = judge(&transaction, group.len(), host);
            let result = deciding_reply(&transaction).summary();
            log(&result);
            (verdicts, Some(client))
        }
        // Only a kept connection sends RSET: it went stale before any of
        // the message left; no verdicts, the caller opens a new one.
        Err(e) if matches!(e.phase(), Phase::Rset) => {
            tracing::debug!(host, error = %e, "kept connection unusable");
            (Vec::new(), None)
        }
        Err(e) => {
            log(&e.to_string());
            (vec![Verdict::from_error(&e, host); group.len()], None)
        }
    }
}
