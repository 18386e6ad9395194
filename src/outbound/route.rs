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

use std::future::Future;
use std::net::IpAddr;

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

/// The DNS questions routing asks.
pub trait Resolve: Send + Sync {
    fn mx(&self, domain: &str) -> impl Future<Output = Result<MxAnswer, LookupError>> + Send;
    fn addresses(
        &self,
        host: &str,
    ) -> impl Future<Output = Result<Vec<IpAddr>, LookupError>> + Send;
}

/// A next hop, before its addresses are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The name the certificate is checked against (SNI, `verify-host`).
    pub host: Host,
    pub port: u16,
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
}

/// The hops for mail to `domain` through a connector with `smarthosts`
/// (none: MX lookup), in the order to try. `shuffle` reorders hosts of
/// equal preference (pass a random one).
pub async fn hops<R: Resolve>(
    resolver: &R,
    smarthosts: &[HostPort],
    domain: &MailDomain,
    mx_port: u16,
    shuffle: impl FnMut(&mut [String]),
) -> Result<Hops, LookupError> {
    if !smarthosts.is_empty() {
        let hops = smarthosts
            .iter()
            .map(|h| Hop {
                host: h.host.clone(),
                port: h.port,
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
            }]))
        }
    };
    let names = match resolver.mx(domain.as_str()).await? {
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
