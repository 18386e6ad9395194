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

use super::address::Governed;
use super::attempt_log::Line;
use super::dane::{Governs, Mandatory, TlsaAnswer};
use super::memory::TlsMemory;
use super::outcome::Verdict;
use super::policy;
use super::pool::Pool;
use super::requiretls::{self, Demand};
use super::route::{hops, mx_fault, plan_host, Hops, Resolve};
use super::send::Job;
use super::sts::DomainSts;
use super::transit_log::{requiretls_returned, Judge, Sessions};
use crate::config::domain::MailDomain;
use crate::config::values::Host;
use crate::config::Config;
use crate::metrics::RequireTlsOutcome;
use crate::queue::body::Body;
pub use crate::queue::delivery::RecipientOutcome;
use crate::queue::envelope::{Envelope, Recipient};
use crate::smtp::status::EnhancedStatus;
use crate::tls::certs::Identity;
use crate::transit::{self, Discard, Sink};

pub use super::settings::Settings;

/// Everything attempts share. Clones are handles to the same deliverer.
pub struct Deliverer<R> {
    pub(super) shared: Arc<Shared<R>>,
}

impl<R> Clone for Deliverer<R> {
    fn clone(&self) -> Self {
        Deliverer {
            shared: self.shared.clone(),
        }
    }
}

pub(super) struct Shared<R> {
    settings: RwLock<Arc<Settings<R>>>,
    pub(super) pool: Pool,
    /// Where the opportunistic ladder starts for each server; the
    /// control socket's too.
    pub(super) memory: Arc<TlsMemory>,
    /// Where sessions and delivered messages are counted (TLS-RPT,
    /// `tlsrelay report`); a reload keeps it.
    pub(super) transit: Arc<dyn Sink>,
}

/// Why an address gave no verdict, so the next one is tried.
pub(super) struct Skip {
    pub(super) status: EnhancedStatus,
    pub(super) reason: String,
    /// The hop failed what REQUIRETLS asks (authenticated, verified,
    /// offering it), rather than being unreachable or busy.
    pub(super) requiretls: bool,
}

impl Skip {
    fn new(status: EnhancedStatus, reason: String) -> Skip {
        Skip {
            status,
            reason,
            requiretls: false,
        }
    }
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

    /// Tries every pending recipient once; returns one outcome each. The
    /// content is read as it is sent; one that cannot be read at all
    /// defers everyone.
    pub async fn attempt(
        &self,
        queue_id: &str,
        envelope: &Envelope,
        content: &Body,
        pending: &[&Recipient],
    ) -> Vec<RecipientOutcome> {
        let head = match content.head(requiretls::HEAD_LIMIT).await {
            Ok(head) => head,
            Err(e) => {
                let reason = format!("cannot read the message from the spool: {e}");
                let verdict = Verdict::deferred(EnhancedStatus::TRANSIENT, reason);
                let outcome = |r: &&Recipient| RecipientOutcome {
                    address: r.address.clone(),
                    verdict: verdict.clone(),
                    remote_mta: None,
                    ip: None,
                    tls: None,
                };
                return pending.iter().map(outcome).collect();
            }
        };
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
                head: &head,
                group: &group,
                chunking: settings.chunking,
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
        let demand = Demand::of(job.envelope, job.head, connector);
        // `TLS-Required: No` lifts DANE and MTA-STS (RFC 8689 §4.3).
        let dane_asked = settings.dane_asked(connector) && demand.policies_apply();
        let smarthost = !connector.settings.smarthosts.is_empty();
        // A flagged message's MX is looked up validated wherever the
        // resolver validates: a secure answer authenticates its hosts.
        let validated = dane_asked || (demand.required() && settings.resolver.validates());
        let recipients: Vec<&str> = job.group.iter().map(|r| r.address.as_str()).collect();
        let recipients = recipients.join(",");
        let silent = !demand.policies_apply();
        // A host (or domain) a policy rules out before any connection: a
        // log line, and a session for the transit store when the
        // destination's `policy` refused it (not our sender's REQUIRETLS).
        let refused = |host: &Host,
                       dane: &'static str,
                       sts: &'static str,
                       deferral: &policy::Deferral,
                       policy: Option<transit::Policy>| {
            let line = Line {
                queue_id: job.queue_id,
                recipients: &recipients,
                host: &host.to_string(),
                ip: "-",
                connector,
                tls_memory: "-",
                dane,
                usage: "-",
                sts,
                requiretls: demand.word(),
            };
            line.refused(deferral);
            if let Some(policy) = policy {
                let mut sessions = Sessions::new(domain.to_string(), host.clone(), None, policy);
                sessions.silent = silent;
                sessions.ruled_out(self.transit(), deferral);
            }
        };
        let shuffle = crate::random::shuffle;
        let route = hops(
            &settings.resolver,
            &connector.settings.smarthosts,
            &domain,
            settings.mx_port,
            validated,
            shuffle,
        );
        let hop_list = match route.await {
            Ok(Hops::Try(list)) => list,
            Ok(Hops::Fail { status, reason }) => return all(Verdict::failed(status, reason)),
            Ok(Hops::MxFault(fault)) => {
                let (word, deferral) = mx_fault(level, &fault);
                // Only names are looked up validated: a literal has no MX.
                if let MailDomain::Name(name) = &domain {
                    let host = Host::Name(name.clone());
                    refused(&host, word, "-", &deferral, Some(tlsa_policy(None)));
                }
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
        let sts = match demand.policies_apply() {
            true => {
                let mta_sts = settings.mta_sts.as_ref();
                DomainSts::find(mta_sts, &settings.resolver, connector, &domain)
                    .await
                    .0
            }
            false => DomainSts::NotAsked,
        };
        let mut last = Skip::new(
            EnhancedStatus::NO_ANSWER,
            format!("no host for {domain} could be reached"),
        );
        // REQUIRETLS: hops refused for it, or merely unreachable.
        let mut tally = requiretls::Tally::default();
        for hop in &hop_list {
            let plan = plan_host(&settings.resolver, hop, level, dane_asked).await;
            let host = hop.host.to_string();
            let whole_domain = matches!(plan.governs, Governs::DeferDomain(_));
            let mandatory = match plan.governs {
                Governs::Level => None,
                Governs::Dane(mandatory) => Some(mandatory),
                Governs::NextHost(deferral) | Governs::DeferDomain(deferral) => {
                    let word = deferral.dane_word().unwrap_or("-");
                    let policy = tlsa_policy(plan.tlsa.as_ref());
                    refused(&hop.host, word, "-", &deferral, Some(policy));
                    let reason = format!("{host}: {deferral}");
                    if whole_domain {
                        return all(Verdict::deferred(deferral.status(), reason));
                    }
                    last = Skip::new(deferral.status(), reason);
                    tally.skipped(false);
                    continue;
                }
            };
            // DANE first (RFC 8461 §2): MTA-STS only where DANE does not govern.
            let host_sts = match mandatory {
                Some(_) => &DomainSts::NotAsked,
                None => &sts,
            };
            if let Some(deferral) = host_sts.refuses(&hop.host) {
                let policy = host_sts.policy().unwrap_or_else(transit::Policy::none);
                refused(
                    &hop.host,
                    plan.dane.label(),
                    "mx-mismatch",
                    &deferral,
                    Some(policy),
                );
                last = Skip::new(deferral.status(), format!("{host}: {deferral}"));
                last.requiretls = demand.required();
                tally.skipped(last.requiretls);
                continue;
            }
            let authenticated = requiretls::hop_authenticated(hop, smarthost, host_sts.enforced());
            if demand.required() && !authenticated {
                // Not contacted: nothing of the message may reach it.
                let deferral = policy::Deferral::RequireTlsMx(host.clone());
                refused(
                    &hop.host,
                    plan.dane.label(),
                    host_sts.word(),
                    &deferral,
                    None,
                );
                last = Skip::new(deferral.status(), format!("{host}: {deferral}"));
                last.requiretls = true;
                tally.skipped(true);
                continue;
            }
            let ips = match plan.addresses {
                Ok(ips) => ips,
                Err((status, reason)) => {
                    last = Skip::new(status, reason);
                    tally.skipped(false);
                    continue;
                }
            };
            let sts_trust = settings.mta_sts.as_ref().map(|s| &s.trust);
            for ip in ips {
                let addr = SocketAddr::new(ip, hop.port);
                let enforce = sts_trust.filter(|_| host_sts.enforced());
                let mut ladder =
                    settings.ladder(connector, &domain, hop, addr, mandatory.as_ref(), enforce);
                ladder.requiretls = demand.required();
                let policy = match &mandatory {
                    Some(_) => tlsa_policy(plan.tlsa.as_ref()),
                    None => host_sts.policy().unwrap_or_else(transit::Policy::none),
                };
                let mut sessions =
                    Sessions::new(domain.to_string(), hop.host.clone(), Some(ip), policy);
                sessions.silent = silent;
                sessions.requiretls = job.envelope.requiretls;
                (sessions.judge, sessions.standing) = match (&mandatory, sts_trust) {
                    (Some(Mandatory::EncryptOnly), _) => (Judge::Dane, Some(tlsa_invalid())),
                    (Some(_), _) => (Judge::Dane, None),
                    (None, Some(trust)) if host_sts.judging().is_some() => {
                        (Judge::Sts(trust), None)
                    }
                    (None, _) => (Judge::Nothing, host_sts.fetch_failure()),
                };
                let governed = Governed {
                    dane: plan.dane.label(),
                    sts: match mandatory {
                        Some(_) => "-",
                        None => host_sts.word(),
                    },
                    testing: matches!(host_sts, DomainSts::Testing(_)),
                    requiretls: demand.word(),
                };
                match self
                    .attempt_address(&job, &ladder, governed, sessions)
                    .await
                {
                    Ok((verdicts, tls)) => {
                        let delivered = |v: &Verdict| matches!(v, Verdict::Delivered { .. });
                        if job.envelope.requiretls && verdicts.iter().any(delivered) {
                            crate::metrics::requiretls_message(RequireTlsOutcome::Delivered);
                        }
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
                    Err(skip) => {
                        tally.skipped(skip.requiretls);
                        last = skip;
                    }
                }
            }
        }
        if tally.returns() {
            // RFC 8689 §4.2.1: no hop met the requirement; returned now,
            // never sent another way.
            let domain = domain.to_string();
            requiretls_returned(self.transit(), &domain);
            crate::metrics::requiretls_message(RequireTlsOutcome::Returned);
            let reason = requiretls::returned_reason(&domain, &last.reason);
            return all(Verdict::failed(EnhancedStatus::REQUIRETLS_NEEDED, reason));
        }
        all(Verdict::deferred(last.status, last.reason))
    }
}

/// The `tlsa` policy of TLS-RPT, with the records in presentation form.
fn tlsa_policy(answer: Option<&TlsaAnswer>) -> transit::Policy {
    let strings = match answer {
        Some(TlsaAnswer::Records(records)) => records.iter().map(ToString::to_string).collect(),
        _ => Vec::new(),
    };
    transit::Policy {
        kind: transit::PolicyType::Tlsa,
        strings,
        mx_host: Vec::new(),
    }
}

/// DANE: TLSA records published, none usable (RFC 8460 `tlsa-invalid`).
fn tlsa_invalid() -> transit::Failure {
    transit::Failure {
        result_type: transit::ResultType::TlsaInvalid,
        detail: "no usable TLSA record".into(),
    }
}

/// Where a verdict was given, for the recipient's log line.
#[derive(Clone)]
pub(super) struct At {
    remote_mta: String,
    ip: SocketAddr,
    tls: String,
}
