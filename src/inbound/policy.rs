//! Who is connecting, and what they may do: inbound connector matching
//! and relay control (DESIGN.md §4). Pure functions over the configuration.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::domain::{DomainError, MailDomain};
use crate::config::values::{DomainName, DomainPattern, NamePattern};
use crate::config::{Config, InboundConnector};

/// The inbound side of the configuration, in the form sessions ask it.
#[derive(Debug)]
pub struct InboundPolicy {
    pub hostname: String,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_hops: usize,
    pub bare_lf: crate::smtp::bare_lf::BareLf,
    pub max_errors: u32,
    /// STARTTLS is offered (we have a certificate).
    pub tls_available: bool,
    pub accepted_domains: Vec<DomainPattern>,
    pub connectors: Vec<Connector>,
    /// Sender domains that only one connector may use, and which.
    restricted_senders: Vec<(DomainPattern, usize)>,
    /// Inbound flow control: the delivery backlog and its limits.
    pub flow: super::flow::Flow,
}

/// One inbound connector, as matched and enforced.
#[derive(Debug, Clone)]
pub struct Connector {
    pub name: String,
    pub remote_ips: Vec<crate::config::values::Cidr>,
    pub cert_names: Vec<NamePattern>,
    pub require_tls: bool,
    pub allow_relay: bool,
}

/// Why a recipient is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientVerdict {
    Accept,
    /// `%`, `!` or an `@` hidden in the local part: old routing syntax
    /// that could make us relay.
    RelayTrick,
    /// What follows the `@` is neither a domain (that maps to A-labels)
    /// nor an address literal: no routing decision can be made on it, and
    /// our client could not write it back as a path.
    BadDomain(DomainError),
    /// Not an accepted domain and the connector may not relay.
    RelayDenied,
}

impl InboundPolicy {
    /// The policy of `config`, slowing down on the queue's `backlog`.
    pub fn new(config: &Config, backlog: crate::queue::backlog::Backlog) -> Self {
        let connectors: Vec<Connector> = config.inbound.iter().map(connector).collect();
        let restricted_senders = config
            .inbound
            .iter()
            .enumerate()
            .filter(|(_, c)| c.restrict_sender_domains)
            .flat_map(|(i, c)| c.sender_domains.iter().map(move |d| (d.clone(), i)))
            .collect();
        InboundPolicy {
            hostname: config.server.hostname.to_string(),
            max_message_size: config.server.max_message_size.0,
            max_recipients: config.server.max_recipients,
            max_hops: config.server.max_hops,
            bare_lf: config.server.bare_lf,
            max_errors: config.server.max_errors,
            tls_available: config.tls.cert.is_some() && config.tls.key.is_some(),
            accepted_domains: config.relay.accepted_domains.clone(),
            connectors,
            restricted_senders,
            flow: super::flow::Flow::new(&config.queue, backlog),
        }
    }

    /// The connector for a client: by verified certificate names first,
    /// then by the narrowest network holding its address.
    pub fn match_connector(&self, ip: IpAddr, verified_cert_names: &[String]) -> Option<usize> {
        let by_cert = self.connectors.iter().position(|c| {
            c.cert_names.iter().any(|pattern| {
                verified_cert_names
                    .iter()
                    .any(|name| name_matches(pattern, name))
            })
        });
        by_cert.or_else(|| {
            self.connectors
                .iter()
                .enumerate()
                .filter(|(_, c)| c.cert_names.is_empty())
                .filter_map(|(i, c)| {
                    let best = c
                        .remote_ips
                        .iter()
                        .filter(|net| net.contains(ip))
                        .map(|n| n.0.prefix_len())
                        .max()?;
                    Some((best, i))
                })
                .max_by_key(|(prefix, i)| (*prefix, std::cmp::Reverse(*i)))
                .map(|(_, i)| i)
        })
    }

    /// May this session send from `sender_domain` (canonical, from
    /// [`sender_domain`])? `None`, the null sender, is always allowed.
    pub fn sender_allowed(
        &self,
        sender_domain: Option<&MailDomain>,
        connector: Option<usize>,
    ) -> bool {
        let Some(domain) = sender_domain else {
            return true;
        };
        self.restricted_senders
            .iter()
            .filter(|(pattern, _)| pattern.matches(domain))
            .all(|(_, owner)| Some(*owner) == connector)
    }

    /// Relay control for one recipient address (`local@domain`).
    pub fn recipient(&self, address: &str, connector: Option<usize>) -> RecipientVerdict {
        let Some((local, domain)) = address.rsplit_once('@') else {
            return RecipientVerdict::RelayDenied;
        };
        if local.contains(ROUTING_CHARACTERS) {
            return RecipientVerdict::RelayTrick;
        }
        let domain = match domain.parse::<MailDomain>() {
            Ok(domain) => domain,
            Err(e) => return RecipientVerdict::BadDomain(e),
        };
        if let Some(index) = connector {
            if self.connectors[index].allow_relay {
                return RecipientVerdict::Accept;
            }
        }
        match self.accepted_domains.iter().any(|p| p.matches(&domain)) {
            true => RecipientVerdict::Accept,
            false => RecipientVerdict::RelayDenied,
        }
    }

    /// Where `<postmaster>` (no domain, RFC 5321 §4.5.1) goes: postmaster of
    /// the first accepted domain, which is routed to a real mail server.
    pub fn postmaster(&self) -> Option<String> {
        self.accepted_domains.iter().find_map(|p| match p {
            DomainPattern::Exact(domain) => Some(format!("postmaster@{domain}")),
            _ => None,
        })
    }
}

/// Characters that route mail when they appear in a local part (`%` and
/// `!` hacks, an `@` from a quoted local part), and their Unicode
/// compatibility forms (fullwidth, small and vertical forms, `‼`), which
/// an SMTPUTF8 server downstream that normalises to NFKC would turn into
/// the same routing.
const ROUTING_CHARACTERS: [char; 13] = [
    '@', '%', '!', '\u{ff20}', '\u{ff05}', '\u{ff01}', '\u{fe6b}', '\u{fe6a}', '\u{fe57}',
    '\u{fe15}', '\u{203c}', '\u{2048}', '\u{2049}',
];

/// The canonical domain of a sender the session accepts by syntax:
/// `None` for the null path, else the domain after the last `@`, which
/// must be a domain that maps to A-labels or an address literal (RFC 5321
/// §4.1.2, RFC 6531 §3.3). Anything else (smtp-proto hands on `>`,
/// quotes or spaces after the `@`) would break the path our client
/// writes for it, or smuggle parameters into it.
pub fn sender_domain(address: &str) -> Result<Option<MailDomain>, DomainError> {
    match MailDomain::of_address(address) {
        Some(domain) => domain.map(Some),
        None if address.is_empty() => Ok(None),
        None => Err(DomainError::Syntax {
            text: address.to_string(),
            why: "an address needs a domain",
        }),
    }
}

/// Two recipient addresses name the same mailbox: the local parts equal
/// ignoring ASCII case (as before: RFC 5321 lets the receiver decide, and
/// every server we know folds it), the domains equal in canonical form.
pub fn same_mailbox(a: &str, b: &str) -> bool {
    let (Some((local_a, domain_a)), Some((local_b, domain_b))) =
        (a.rsplit_once('@'), b.rsplit_once('@'))
    else {
        return a.eq_ignore_ascii_case(b);
    };
    local_a.eq_ignore_ascii_case(local_b)
        && match (
            domain_a.parse::<MailDomain>(),
            domain_b.parse::<MailDomain>(),
        ) {
            (Ok(x), Ok(y)) => x == y,
            _ => domain_a.eq_ignore_ascii_case(domain_b),
        }
}

fn connector(c: &InboundConnector) -> Connector {
    Connector {
        name: c.name.clone(),
        remote_ips: c.remote_ips.clone(),
        cert_names: c.tls_client_cert_names.clone(),
        require_tls: c.require_tls,
        allow_relay: c.allow_relay,
    }
}

/// RFC 6125 §6.4.3 matching of a certificate name against a configured
/// pattern: `*.example.test` matches exactly one label in front.
pub fn name_matches(pattern: &NamePattern, name: &str) -> bool {
    let Ok(name) = name.parse::<DomainName>() else {
        return false;
    };
    match &pattern.0 {
        DomainPattern::Exact(exact) => *exact == name,
        DomainPattern::Subdomains(parent) => name
            .as_str()
            .split_once('.')
            .is_some_and(|(_, rest)| rest == parent.as_str()),
        DomainPattern::Literal(_) | DomainPattern::Any => false,
    }
}

/// Counts of sessions per client IP, for `max_connections_per_ip`.
#[derive(Debug, Default)]
pub struct IpCounts(HashMap<IpAddr, usize>);

impl IpCounts {
    /// Counts a new session from `ip` unless it would exceed `limit`.
    pub fn try_add(&mut self, ip: IpAddr, limit: usize) -> bool {
        let count = self.0.entry(ip).or_insert(0);
        if *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    pub fn remove(&mut self, ip: IpAddr) {
        if let Some(count) = self.0.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.0.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
