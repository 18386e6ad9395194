//! Where mail for a domain goes (DESIGN.md §5 "Route"): the outbound
//! connector whose pattern is most specific, then its smarthosts in order,
//! or the domain's MX hosts by preference (RFC 5321 §5.1), equal
//! preferences in random order, the domain itself when it has no MX
//! (implicit MX), nowhere when it publishes a null MX (RFC 7505). An
//! address literal (`user@[192.0.2.1]`, RFC 5321 §4.1.3) without a
//! connector goes straight to that address on `mx_port`, with no lookup.
//!
//! DNS sits behind [`Resolve`] so the ordering rules are tested without a
//! network; the relay's resolver implements it in `crate::dns`.
//!
//! Where DANE is asked (DESIGN.md §5b), the MX answer comes from the
//! validating resolver and a bogus or failed one is [`Hops::MxFault`],
//! never a fallback to the domain's address records; [`plan_host`] then
//! looks up each host's addresses, its TLSA records when the MX and
//! address answers are both secure, and asks `super::dane` who governs it.

use std::future::Future;
use std::net::IpAddr;

use super::dane::{
    self, outcome, Checked, FailKind, Fault, Governs, HostDane, Security, Status, TlsaAnswer,
    Validated,
};
use super::policy::Deferral;
use crate::config::values::TlsLevel;

use crate::config::domain::MailDomain;
use crate::config::values::{DomainName, DomainPattern, Host, HostPort};
use crate::config::{connector_covering, OutboundConnector};
use crate::smtp::status::EnhancedStatus;

/// The connector that carries mail for `domain`: the most specific
/// pattern wins (exact or the literal, then the longest `*.suffix`, then
/// `*`); `None` means the default: MX lookup (or the literal's address)
/// with opportunistic TLS.
pub fn connector_for<'a>(
    connectors: &'a [OutboundConnector],
    domain: &MailDomain,
) -> Option<&'a OutboundConnector> {
    connector_covering(connectors, &domain_pattern(domain))
}

/// The pattern that matches exactly `domain`.
pub fn domain_pattern(domain: &MailDomain) -> DomainPattern {
    match domain {
        MailDomain::Name(name) => DomainPattern::Exact(name.clone()),
        MailDomain::Literal(ip) => DomainPattern::Literal(*ip),
    }
}

/// What DNS says about a domain's mail servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MxAnswer {
    /// MX records: (preference, host name).
    Hosts(Vec<(u16, String)>),
    /// The domain exists but has no MX: its own A/AAAA are the host.
    NoMx,
    /// `MX 0 .` (RFC 7505): the domain accepts no mail.
    NullMx,
    /// The domain does not exist.
    NxDomain,
}

/// Why a lookup gave no answer; always worth retrying later.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("DNS lookup for {name} failed: {reason}")]
pub struct LookupError {
    pub name: String,
    pub reason: String,
}

/// The DNS questions routing asks. The validated ones answer with what
/// DNSSEC says; a resolver that does not validate keeps their defaults
/// (everything insecure, so DANE never applies).
pub trait Resolve: Send + Sync {
    fn mx(&self, domain: &str) -> impl Future<Output = Result<MxAnswer, LookupError>> + Send;
    fn addresses(
        &self,
        host: &str,
    ) -> impl Future<Output = Result<Vec<IpAddr>, LookupError>> + Send;

    /// Whether the validated lookups validate (`[dns] dnssec`).
    fn validates(&self) -> bool {
        false
    }

    fn mx_checked(&self, domain: &str) -> impl Future<Output = Checked<MxAnswer>> + Send {
        async move { insecure(self.mx(domain).await) }
    }

    fn addresses_checked(&self, host: &str) -> impl Future<Output = Checked<Vec<IpAddr>>> + Send {
        async move { insecure(self.addresses(host).await) }
    }

    /// The TXT records at `name` (MTA-STS discovery, RFC 8461 §3.1; TLS-RPT,
    /// RFC 8460 §3), each record's strings joined; empty when there are
    /// none (NXDOMAIN, NODATA). The default knows no TXT records.
    fn txt(&self, _name: &str) -> impl Future<Output = Result<Vec<String>, LookupError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// `_PORT._tcp.HOST. TLSA` (RFC 7672 §2.2).
    fn tlsa(&self, _host: &str, _port: u16) -> impl Future<Output = TlsaAnswer> + Send {
        async { TlsaAnswer::Insecure }
    }
}

/// An unvalidated answer as a validated one: insecure, or failed.
fn insecure<T>(answer: Result<T, LookupError>) -> Checked<T> {
    match answer {
        Ok(value) => Ok(Validated {
            value,
            security: Security::Insecure,
        }),
        Err(e) => Err(Fault::Failed {
            name: e.name,
            kind: FailKind::Other,
            reason: e.reason,
        }),
    }
}

/// A next hop, before its addresses are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The name the certificate is checked against (SNI, `verify-host`).
    pub host: Host,
    pub port: u16,
    /// What DNSSEC said of the MX answer that named this host: insecure
    /// for smarthosts, address literals and unvalidated lookups.
    pub mx: Status,
}

/// The hops for a domain, or why there are none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hops {
    Try(Vec<Hop>),
    /// Permanent: bounce with this status and reason.
    Fail {
        status: EnhancedStatus,
        reason: String,
    },
    /// DANE asked, and the MX answer is bogus or failed: the domain
    /// waits (RFC 7672 §2.2.1), see [`super::dane::outcome`].
    MxFault(Fault),
}

/// The hops for mail to `domain` through a connector with `smarthosts`
/// (none: MX lookup), in the order to try. `validated`: the MX lookup goes
/// through the validating resolver (DANE is asked). `shuffle` reorders
/// hosts of equal preference (pass a random one).
pub async fn hops<R: Resolve>(
    resolver: &R,
    smarthosts: &[HostPort],
    domain: &MailDomain,
    mx_port: u16,
    validated: bool,
    shuffle: impl FnMut(&mut [String]),
) -> Result<Hops, LookupError> {
    if !smarthosts.is_empty() {
        let hops = smarthosts
            .iter()
            .map(|h| Hop {
                host: h.host.clone(),
                port: h.port,
                mx: Status::Insecure,
            })
            .collect();
        return Ok(Hops::Try(hops));
    }
    let domain = match domain {
        MailDomain::Name(name) => name,
        MailDomain::Literal(ip) => {
            return Ok(Hops::Try(vec![Hop {
                host: Host::Ip(*ip),
                port: mx_port,
                mx: Status::Insecure,
            }]))
        }
    };
    let (answer, mx) = match validated {
        false => (resolver.mx(domain.as_str()).await?, Status::Insecure),
        true => {
            let checked = resolver.mx_checked(domain.as_str()).await;
            let status = Status::of(&checked);
            match checked {
                Ok(answer) => (answer.value, status),
                Err(fault) => return Ok(Hops::MxFault(fault)),
            }
        }
    };
    let names = match answer {
        MxAnswer::Hosts(records) => order_mx(records, shuffle),
        MxAnswer::NoMx => vec![domain.to_string()],
        MxAnswer::NullMx => {
            return Ok(Hops::Fail {
                status: EnhancedStatus::NULL_MX,
                reason: format!("{domain} accepts no mail (null MX, RFC 7505)"),
            })
        }
        MxAnswer::NxDomain => {
            return Ok(Hops::Fail {
                status: EnhancedStatus::BAD_SYSTEM,
                reason: format!("domain {domain} does not exist"),
            })
        }
    };
    let hops = names
        .into_iter()
        .filter_map(|name| name.trim_end_matches('.').parse::<DomainName>().ok())
        .map(|name| Hop {
            host: Host::Name(name),
            port: mx_port,
            mx,
        })
        .collect::<Vec<_>>();
    Ok(match hops.is_empty() {
        true => Hops::Fail {
            status: EnhancedStatus::NO_ROUTE,
            reason: format!("the MX records of {domain} name no usable host"),
        },
        false => Hops::Try(hops),
    })
}

/// The addresses of a hop: an IP literal as it is, a name looked up.
pub async fn addresses<R: Resolve>(
    resolver: &R,
    host: &Host,
) -> Result<Vec<IpAddr>, (EnhancedStatus, String)> {
    match host {
        Host::Ip(ip) => Ok(vec![*ip]),
        Host::Name(name) => listed(name.as_str(), resolver.addresses(name.as_str()).await),
    }
}

fn listed(
    name: &str,
    answer: Result<Vec<IpAddr>, LookupError>,
) -> Result<Vec<IpAddr>, (EnhancedStatus, String)> {
    match answer {
        Ok(list) if !list.is_empty() => Ok(list),
        Ok(_) => Err((EnhancedStatus::UNROUTABLE, format!("{name} has no address"))),
        Err(e) => Err((EnhancedStatus::DNS_FAILURE, e.to_string())),
    }
}

/// One host as delivery and `probe` meet it: its addresses, the DNSSEC
/// status of the answers (when DANE is asked), and who governs it.
#[derive(Clone, Debug)]
pub struct HostPlan {
    pub addresses: Result<Vec<IpAddr>, (EnhancedStatus, String)>,
    /// The address answer's DNSSEC status; `None` when not validated.
    pub address_status: Option<Status>,
    /// The TLSA answer, when the MX and address answers were secure.
    pub tlsa: Option<TlsaAnswer>,
    pub dane: HostDane,
    pub governs: Governs,
}

/// Looks `hop` up for mail under `level`; `dane_asked`: `[delivery]
/// dane` and validation on and a level DANE may govern (see
/// [`super::dane::asked_for`]). TLSA is asked only when RFC 7672 §2.2.1
/// says it matters ([`super::dane::needs_tlsa`]), on the port connected to.
pub async fn plan_host<R: Resolve>(
    resolver: &R,
    hop: &Hop,
    level: TlsLevel,
    dane_asked: bool,
) -> HostPlan {
    let name = match (&hop.host, dane_asked) {
        (Host::Name(name), true) => name.as_str(),
        (host, _) => {
            let dane = HostDane::Off;
            return HostPlan {
                addresses: addresses(resolver, host).await,
                address_status: None,
                tlsa: None,
                governs: dane::governs(level, &dane),
                dane,
            };
        }
    };
    let checked = resolver.addresses_checked(name).await;
    let status = Status::of(&checked);
    let found = match checked {
        Ok(answer) => Ok(answer.value),
        Err(fault) => Err(LookupError {
            name: name.to_string(),
            reason: fault.to_string(),
        }),
    };
    let tlsa = match dane::needs_tlsa(hop.mx, status) {
        true => Some(resolver.tlsa(name, hop.port).await),
        false => None,
    };
    let dane = outcome(hop.mx, status, tlsa.as_ref());
    HostPlan {
        addresses: listed(name, found),
        address_status: Some(status),
        tlsa,
        governs: dane::governs(level, &dane),
        dane,
    }
}

/// What DANE makes of a domain whose MX answer is `fault` (asked only
/// where DANE is): the `dane=` word and the deferral of the whole domain.
pub fn mx_fault(level: TlsLevel, fault: &Fault) -> (&'static str, Deferral) {
    let status = Status::of(&Err::<Validated<()>, Fault>(fault.clone()));
    let dane = match outcome(status, Status::Failed, None) {
        // The table's reason, and the resolver's: which name, what failed.
        HostDane::DeferDomain(why) => HostDane::DeferDomain(format!("{why} ({fault})")),
        other => other,
    };
    let deferral = match dane::governs(level, &dane) {
        Governs::DeferDomain(deferral) | Governs::NextHost(deferral) => deferral,
        // Not reached: the table defers a domain whose MX answer failed,
        // and only the levels DANE governs look it up validated.
        Governs::Level | Governs::Dane(_) => Deferral::DaneMxBogus(fault.to_string()),
    };
    // No answer at all is a DNS failure (4.4.3), not a forged one (4.7.5);
    // the domain waits either way.
    match (fault, deferral) {
        (Fault::Failed { .. }, Deferral::DaneMxBogus(why)) => {
            ("mx-failed", Deferral::DaneMxFailed(why))
        }
        (_, deferral) => (dane.label(), deferral),
    }
}

/// MX hosts by preference, lowest first; equal preferences shuffled
/// (RFC 5321 §5.1); a `.` target among others is dropped.
pub fn order_mx(
    mut records: Vec<(u16, String)>,
    mut shuffle: impl FnMut(&mut [String]),
) -> Vec<String> {
    records.retain(|(_, host)| host != "." && !host.is_empty());
    records.sort_by_key(|(preference, _)| *preference);
    let mut ordered = Vec::with_capacity(records.len());
    let mut start = 0;
    while start < records.len() {
        let preference = records[start].0;
        let end = records[start..]
            .iter()
            .position(|(p, _)| *p != preference)
            .map_or(records.len(), |n| start + n);
        let mut group: Vec<String> = records[start..end].iter().map(|(_, h)| h.clone()).collect();
        shuffle(&mut group);
        ordered.extend(group);
        start = end;
    }
    ordered
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
