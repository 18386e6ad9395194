//! One delivery attempt of one message: recipients grouped by domain,
//! each group routed, each hop's addresses tried in turn, each address
//! up the TLS ladder ([`super::ladder`]), the transaction on the
//! connection it gives, judged per recipient (DESIGN.md §5).
//!
//! One [`Deliverer`] lives as long as the relay: a reload swaps its
//! [`Settings`], while the per-destination limits, the idle connections
//! and the broken-TLS memory stay.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use super::attempt_log::{AttemptLog, Line};
use super::dane::{Governs, Mandatory};
use super::ladder::{Channel, Ladder, Stop};
use super::memory::TlsMemory;
use super::outcome::Verdict;
use super::policy;
use super::pool::Pool;
use super::route::{hops, mx_fault, plan_host, Hops, Resolve};
use super::send::{converse, Job};
use crate::config::domain::MailDomain;
use crate::config::Config;
pub use crate::queue::delivery::RecipientOutcome;
use crate::queue::envelope::{Envelope, Recipient};
use crate::smtp::status::EnhancedStatus;
use crate::tls::certs::Identity;
use crate::transit::{Discard, Sink};

pub use super::settings::Settings;

/// Everything attempts share. Clones are handles to the same deliverer.
pub struct Deliverer<R> {
    shared: Arc<Shared<R>>,
}

impl<R> Clone for Deliverer<R> {
    fn clone(&self) -> Self {
        Deliverer {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<R> {
    settings: RwLock<Arc<Settings<R>>>,
    pool: Pool,
    /// Where the opportunistic ladder starts for each server; the
    /// control socket's too.
    memory: Arc<TlsMemory>,
    /// Where sessions and delivered messages are counted (TLS-RPT,
    /// `tlsrelay report`); a reload keeps it.
    transit: Arc<dyn Sink>,
}

/// Why an address gave no verdict, so the next one is tried.
struct Skip {
    status: EnhancedStatus,
    reason: String,
}

impl<R: Resolve> Deliverer<R> {
    pub fn new(
        config: &Config,
        resolver: R,
        identity: Option<Arc<Identity>>,
        memory: Arc<TlsMemory>,
    ) -> Result<Self, String> {
        let settings = Settings::new(config, resolver, identity)?;
        Ok(Deliverer::with_settings(settings, memory))
    }

    pub fn with_settings(settings: Settings<R>, memory: Arc<TlsMemory>) -> Self {
        Deliverer::recording(settings, memory, Arc::new(Discard))
    }

    /// A deliverer that tells `transit` of every session and delivered
    /// message.
    pub fn recording(
        settings: Settings<R>,
        memory: Arc<TlsMemory>,
        transit: Arc<dyn Sink>,
    ) -> Self {
        Deliverer {
            shared: Arc::new(Shared {
                pool: Pool::new(settings.per_destination),
                settings: RwLock::new(Arc::new(settings)),
                memory,
                transit,
            }),
        }
    }

    /// Where sessions and delivered messages are counted.
    pub fn transit(&self) -> &dyn Sink {
        self.shared.transit.as_ref()
    }

    /// The settings in force; an attempt keeps the ones it started with.
    pub fn settings(&self) -> Arc<Settings<R>> {
        match self.shared.settings.read() {
            Ok(settings) => settings.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A reload: attempts from now on use `settings`. The limits and the
    /// broken-TLS memory stay; idle connections, opened under the old
    /// settings, are not used again.
    pub fn reconfigure(&self, settings: Settings<R>) {
        self.shared.pool.set_limit(settings.per_destination);
        let settings = Arc::new(settings);
        match self.shared.settings.write() {
            Ok(mut current) => *current = settings,
            Err(poisoned) => *poisoned.into_inner() = settings,
        }
        self.shared.pool.renew();
    }

    /// The broken-TLS memory (`probe` reads it).
    pub fn memory(&self) -> &TlsMemory {
        &self.shared.memory
    }

    /// Closes connections idle too long; forgets unused limits.
    pub fn sweep_idle(&self) {
        self.shared.pool.sweep();
    }

    /// Tries every pending recipient once; returns one outcome each.
    pub async fn attempt(
        &self,
        queue_id: &str,
        envelope: &Envelope,
        content: &[u8],
        pending: &[&Recipient],
    ) -> Vec<RecipientOutcome> {
        let settings = self.settings();
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
            let job = Job {
                queue_id,
                envelope,
                content,
                group: &group,
            };
            let verdicts = self.attempt_domain(&settings, job, &domain).await;
            outcomes.extend(group.iter().zip(verdicts).map(|(r, (verdict, at))| {
                RecipientOutcome {
                    address: r.address.clone(),
                    verdict,
                    remote_mta: at.as_ref().map(|a| a.remote_mta.clone()),
                    ip: at.as_ref().map(|a| a.ip),
                    tls: at.map(|a| a.tls),
                }
            }));
        }
        outcomes
    }

    /// One verdict per recipient of the group, with where it was given.
    async fn attempt_domain(
        &self,
        settings: &Settings<R>,
        job: Job<'_>,
        domain: &str,
    ) -> Vec<(Verdict, Option<At>)> {
        let all = |verdict: Verdict| vec![(verdict, None); job.group.len()];
        let Ok(domain) = domain.parse::<MailDomain>() else {
            let reason = format!("invalid recipient domain {domain:?}");
            return all(Verdict::failed(EnhancedStatus::BAD_SYSTEM, reason));
        };
        let connector = settings.connectors.for_domain(&domain);
        let level = connector.level();
        let dane_asked = settings.dane_asked(connector);
        let recipients: Vec<&str> = job.group.iter().map(|r| r.address.as_str()).collect();
        let recipients = recipients.join(",");
        // A line for a host (or domain) DANE rules out before any connection.
        let refused = |host: &str, word: &'static str, deferral: &policy::Deferral| {
            let line = Line {
                queue_id: job.queue_id,
                recipients: &recipients,
                host,
                ip: "-",
                connector,
                tls_memory: "-",
                dane: word,
                usage: "-",
            };
            line.refused(deferral);
        };
        let shuffle = crate::random::shuffle;
        let route = hops(
            &settings.resolver,
            &connector.settings.smarthosts,
            &domain,
            settings.mx_port,
            dane_asked,
            shuffle,
        );
        let hop_list = match route.await {
            Ok(Hops::Try(list)) => list,
            Ok(Hops::Fail { status, reason }) => return all(Verdict::failed(status, reason)),
            Ok(Hops::MxFault(fault)) => {
                let (word, deferral) = mx_fault(level, &fault);
                refused(&domain.to_string(), word, &deferral);
                let reason = format!("{domain}: {deferral}");
                return all(Verdict::deferred(deferral.status(), reason));
            }
            Err(e) => {
                return all(Verdict::deferred(
                    EnhancedStatus::DNS_FAILURE,
                    e.to_string(),
                ))
            }
        };
        let mut last = Skip {
            status: EnhancedStatus::NO_ANSWER,
            reason: format!("no host for {domain} could be reached"),
        };
        for hop in &hop_list {
            let plan = plan_host(&settings.resolver, hop, level, dane_asked).await;
            let host = hop.host.to_string();
            let mandatory = match plan.governs {
                Governs::Level => None,
                Governs::Dane(mandatory) => Some(mandatory),
                Governs::NextHost(deferral) => {
                    refused(&host, deferral.dane_word().unwrap_or("-"), &deferral);
                    last = Skip {
                        status: deferral.status(),
                        reason: format!("{host}: {deferral}"),
                    };
                    continue;
                }
                Governs::DeferDomain(deferral) => {
                    refused(&host, deferral.dane_word().unwrap_or("-"), &deferral);
                    let reason = format!("{host}: {deferral}");
                    return all(Verdict::deferred(deferral.status(), reason));
                }
            };
            let ips = match plan.addresses {
                Ok(ips) => ips,
                Err((status, reason)) => {
                    last = Skip { status, reason };
                    continue;
                }
            };
            for ip in ips {
                let addr = SocketAddr::new(ip, hop.port);
                let ladder = settings.ladder(connector, &domain, hop, addr, mandatory.as_ref());
                match self.attempt_address(&job, &ladder, plan.dane.label()).await {
                    Ok((verdicts, tls)) => {
                        let at = At {
                            remote_mta: hop.host.to_string(),
                            ip: ladder.addr,
                            tls,
                        };
                        return verdicts
                            .into_iter()
                            .map(|v| (v, Some(at.clone())))
                            .collect();
                    }
                    Err(skip) => last = skip,
                }
            }
        }
        all(Verdict::deferred(last.status, last.reason))
    }

    /// One server address: a kept connection if one answers, else up the
    /// ladder; then the transaction. `Err` when it gave no verdict.
    async fn attempt_address(
        &self,
        job: &Job<'_>,
        ladder: &Ladder<'_>,
        dane: &'static str,
    ) -> Result<(Vec<Verdict>, String), Skip> {
        let (connector, addr) = (ladder.connector, ladder.addr);
        let host = ladder.hop.host.to_string();
        let pool = &self.shared.pool;
        let recipients: Vec<&str> = job.group.iter().map(|r| r.address.as_str()).collect();
        let mut log = AttemptLog {
            queue_id: job.queue_id,
            recipients: recipients.join(","),
            host: &host,
            addr,
            connector,
            memory_note: "-".into(),
            memory: &self.shared.memory,
            level: ladder.level(),
            // Under DANE an attempt that does not end `verified` or
            // `encrypt-only` failed.
            dane: match ladder.dane {
                Some(_) => "failed",
                None => dane,
            },
            usage: None,
        };
        // At most max_connections_per_destination at once to one host.
        let _slot = pool.slot(&format!("{host}:{}", ladder.hop.port)).await;
        // A kept connection serves only mail under the same policy: one
        // made without DANE, or under other TLSA records, never serves a
        // host that DANE now governs.
        let key = match ladder.dane {
            Some(Mandatory::Authenticate(records)) => {
                let records: Vec<String> = records.iter().map(ToString::to_string).collect();
                format!("{addr} dane {} {}", connector.label(), records.join(","))
            }
            Some(Mandatory::EncryptOnly) => format!("{addr} dane-encrypt {}", connector.label()),
            None => format!("{addr} {} {}", connector.level(), connector.label()),
        };
        if let Some(idle) = pool.take(&key).await {
            if let Some(mandatory) = ladder.dane {
                log.dane = match mandatory {
                    Mandatory::Authenticate(_) => "verified",
                    Mandatory::EncryptOnly => "encrypt-only",
                };
            }
            let summary = format!("{} (reused)", idle.tls);
            let logged = |result: &str| log.line(&summary, &idle.channel, result);
            let (verdicts, back) = converse(idle.client, job, &host, logged).await;
            if !verdicts.is_empty() {
                if let Some(client) = back {
                    pool.park(&key, client, idle.tls, idle.channel);
                }
                return Ok((verdicts, summary));
            }
            // Its RSET, pipelined in front of MAIL, failed: the kept
            // connection had gone stale, nothing was sent; a new one.
        }
        let start = self
            .shared
            .memory
            .start(ladder.level(), ladder.fallback, &addr.to_string());
        log.memory_note = start.note();
        let ready = ladder
            .climb(&start, &mut log)
            .await
            .map_err(|stop| match stop {
                Stop::Unreachable(reason) => Skip {
                    status: EnhancedStatus::NO_ANSWER,
                    reason: format!("{host} [{addr}]: {reason}"),
                },
                Stop::Deferred(deferral) => Skip {
                    status: deferral.status(),
                    reason: format!("{host}: {deferral}"),
                },
            })?;
        if let Some((word, usage)) = ready.how.dane() {
            log.dane = word;
            log.usage = usage.or(log.usage);
        }
        let (summary, channel) = (ready.how.summary(), ready.how.channel());
        let logged = |result: &str| log.line(&summary, &channel, result);
        let (mut verdicts, back) = converse(ready.client, job, &host, logged).await;
        match (back, &channel) {
            // A plaintext session after TLS failed is not kept: the next
            // message tries TLS again, so a broken handshake buys no
            // later plaintext.
            (Some(client), Channel::Fallback) => drop(tokio::spawn(client.quit())),
            (Some(client), _) => pool.park(&key, client, summary.clone(), channel.clone()),
            (None, _) => {}
        }
        if matches!(channel, Channel::Fallback) {
            verdicts = verdicts.into_iter().map(Verdict::after_fallback).collect();
        }
        Ok((verdicts, summary))
    }
}

/// Where a verdict was given, for the recipient's log line.
#[derive(Clone)]
struct At {
    remote_mta: String,
    ip: SocketAddr,
    tls: String,
}
