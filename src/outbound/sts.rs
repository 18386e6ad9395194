//! MTA-STS in delivery (DESIGN.md §5b, RFC 8461 §4): whether it is asked
//! for a domain, what the policy makes of each MX host, and how a server's
//! certificate is judged under it. `crate::mta_sts` finds the policy;
//! this applies it, the same way for delivery and `probe`.
//!
//! Precedence: only MX routing (no smarthost, no address literal) under
//! `opportunistic`, `required` or no connector, with `[mta_sts] enabled`;
//! and per host only where DANE does not govern (DANE first, RFC 8461 §2).
//! Under `enforce` a matching host climbs the ladder as `verify-host`
//! against the webpki roots plus `[mta_sts] ca_file` (TLS mandatory, no
//! plaintext rung, no broken-TLS memory), every deferral wrapped in
//! [`Deferral::MtaSts`]; a host that does not match is not contacted.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};

use super::connector::Connector;
use super::policy::Deferral;
use super::route::Resolve;
use crate::config::domain::MailDomain;
use crate::config::values::{Host, TlsLevel};
use crate::mta_sts::lookup::Finder;
use crate::mta_sts::{Lookup, Mode, Outcome, Policy};
use crate::tls::trust::{check_name, ChainError, TrustStore};
use crate::tls::verify::Checks;
use crate::transit::{self, Failure, ResultType};

/// `[mta_sts]` made ready: the policy finder and the anchors MX
/// certificates are checked against under a policy.
#[derive(Clone)]
pub struct StsSettings {
    pub finder: Finder,
    /// The webpki roots plus `[mta_sts] ca_file`.
    pub trust: TrustStore,
}

/// The relay's resolver, as `crate::mta_sts` asks it.
struct Via<'a, R>(&'a R);

impl<R: Resolve> crate::mta_sts::Dns for Via<'_, R> {
    async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        self.0.txt(name).await.map_err(|e| e.to_string())
    }

    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        self.0.addresses(host).await.map_err(|e| e.to_string())
    }
}

/// MTA-STS for one domain of one attempt.
#[derive(Clone, Debug)]
pub enum DomainSts {
    /// Not asked: disabled, a smarthost or literal route, a forced level.
    NotAsked,
    /// No policy, or `mode: none`.
    NoPolicy,
    /// A policy is published and could not be had: as without one.
    Failed {
        kind: ResultType,
        reason: String,
    },
    Enforce(Arc<Policy>),
    Testing(Arc<Policy>),
}

/// Whether MTA-STS is asked for mail to `domain` through `connector`.
pub fn asked(settings: Option<&StsSettings>, connector: &Connector, domain: &MailDomain) -> bool {
    settings.is_some()
        && matches!(
            connector.level(),
            TlsLevel::Opportunistic | TlsLevel::Required
        )
        && connector.settings.smarthosts.is_empty()
        && matches!(domain, MailDomain::Name(_))
}

impl DomainSts {
    /// Looks the policy up where it is asked; the lookup for `probe`.
    pub async fn find<R: Resolve>(
        settings: Option<&StsSettings>,
        resolver: &R,
        connector: &Connector,
        domain: &MailDomain,
    ) -> (DomainSts, Option<Lookup>) {
        let Some(sts) = settings.filter(|_| asked(settings, connector, domain)) else {
            return (DomainSts::NotAsked, None);
        };
        let lookup = sts.finder.lookup(&Via(resolver), &domain.to_string()).await;
        let state = match &lookup.outcome {
            Outcome::None => DomainSts::NoPolicy,
            Outcome::Failed { kind, reason } => DomainSts::Failed {
                kind: *kind,
                reason: reason.clone(),
            },
            Outcome::Policy(p) if p.mode == Mode::Enforce => DomainSts::Enforce(p.clone()),
            Outcome::Policy(p) => DomainSts::Testing(p.clone()),
        };
        (state, Some(lookup))
    }

    /// The `sts=` word of a host before its attempt ends (`-` where DANE
    /// governs is the caller's business).
    pub fn word(&self) -> &'static str {
        match self {
            DomainSts::NotAsked => "-",
            DomainSts::NoPolicy => "none",
            DomainSts::Failed {
                kind: ResultType::StsPolicyInvalid,
                ..
            } => "invalid",
            DomainSts::Failed { .. } => "fetch-error",
            DomainSts::Enforce(_) => "failed",
            DomainSts::Testing(_) => "testing",
        }
    }

    /// The policy sessions to the domain are judged by (TLS-RPT).
    pub fn policy(&self) -> Option<transit::Policy> {
        match self {
            DomainSts::Enforce(p) | DomainSts::Testing(p) => Some(transit::Policy {
                kind: transit::PolicyType::Sts,
                strings: p.lines.clone(),
                mx_host: p.mx.clone(),
            }),
            DomainSts::Failed { .. } => Some(transit::Policy {
                kind: transit::PolicyType::Sts,
                strings: Vec::new(),
                mx_host: Vec::new(),
            }),
            DomainSts::NotAsked | DomainSts::NoPolicy => None,
        }
    }

    /// The failure every session to the domain carries when the policy
    /// could not be had.
    pub fn fetch_failure(&self) -> Option<Failure> {
        match self {
            DomainSts::Failed { kind, reason } => Some(Failure {
                result_type: *kind,
                detail: reason.clone(),
            }),
            _ => None,
        }
    }

    /// The policy whose certificate rules the session is judged by.
    pub fn judging(&self) -> Option<&Policy> {
        match self {
            DomainSts::Enforce(p) | DomainSts::Testing(p) => Some(p),
            _ => None,
        }
    }

    /// Under `enforce`, a host the policy does not name: not contacted.
    pub fn refuses(&self, host: &Host) -> Option<Deferral> {
        match (self, host) {
            (DomainSts::Enforce(policy), Host::Name(name)) if !policy.matches(name.as_str()) => {
                Some(Deferral::MtaStsMxMismatch(name.to_string()))
            }
            (DomainSts::Enforce(_), Host::Ip(ip)) => {
                Some(Deferral::MtaStsMxMismatch(ip.to_string()))
            }
            _ => None,
        }
    }

    pub fn enforced(&self) -> bool {
        matches!(self, DomainSts::Enforce(_))
    }
}

/// A certificate chain (leaf first) from `host` against the MTA-STS
/// anchors: chain to a trusted root, name the MX host (RFC 8461 §4.2).
pub fn judge(trust: &TrustStore, chain: &[CertificateDer<'_>], host: &Host) -> Result<(), Failure> {
    let failure = |result_type, detail: String| Failure {
        result_type,
        detail,
    };
    if let Err(e) = trust.verify_server_chain(chain, UnixTime::now()) {
        let kind = match e {
            ChainError::Expired | ChainError::NotYetValid => ResultType::CertificateExpired,
            ChainError::SelfSigned { .. } | ChainError::UnknownIssuer { .. } => {
                ResultType::CertificateNotTrusted
            }
            _ => ResultType::ValidationFailure,
        };
        return Err(failure(kind, e.to_string()));
    }
    let leaf = chain
        .first()
        .ok_or_else(|| failure(ResultType::ValidationFailure, "no certificate".into()))?;
    check_name(leaf, &host.to_string())
        .map_err(|e| failure(ResultType::CertificateHostMismatch, e.to_string()))
}

/// What the ladder's `verify-host` reads under `enforce`: the chain and
/// host checks made against the MTA-STS anchors.
pub fn checks(trust: &TrustStore, chain: &[CertificateDer<'_>], host: &Host) -> Checks {
    let chain_ok = trust
        .verify_server_chain(chain, UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string());
    let host_ok = match chain.first() {
        Some(leaf) => check_name(leaf, &host.to_string()).map_err(|e| e.to_string()),
        None => Err("no certificate".to_string()),
    };
    Checks {
        chain: chain_ok,
        domain: host_ok.clone(),
        host: host_ok,
        pinned: false,
    }
}
