//! Names in the configuration: canonical DNS names, the recipient-domain
//! patterns of connectors, and certificate name patterns.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::config::domain::{DomainError, MailDomain};

/// A DNS name in its canonical form (src/config/domain.rs): IDNA 2008
/// A-labels after the UTS #46 mapping, lower case, no trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

impl DomainName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `self` is `other` or one of its subdomains.
    pub fn is_within(&self, other: &DomainName) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.ends_with(&other.0)
                && self.0.as_bytes()[self.0.len() - other.0.len() - 1] == b'.')
    }
}

/// Through [`crate::config::domain::canonical`]: U-labels, upper case and
/// compatibility forms are accepted and mapped to the A-label form.
impl FromStr for DomainName {
    type Err = DomainError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        crate::config::domain::canonical(text).map(DomainName)
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which recipient domains a connector claims: `example.test`,
/// `*.example.test` (its subdomains, not itself), `[192.0.2.1]` (an
/// address literal, RFC 5321 §4.1.3) or `*` (everything else, address
/// literals included). Names are canonical (A-labels), so a U-label in
/// the configuration matches the same domain however a client spells it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    Exact(DomainName),
    Subdomains(DomainName),
    Literal(IpAddr),
    Any,
}

impl DomainPattern {
    pub fn matches(&self, domain: &MailDomain) -> bool {
        match (self, domain) {
            (DomainPattern::Any, _) => true,
            (DomainPattern::Exact(name), MailDomain::Name(domain)) => name == domain,
            (DomainPattern::Subdomains(parent), MailDomain::Name(domain)) => {
                domain != parent && domain.is_within(parent)
            }
            (DomainPattern::Literal(ip), MailDomain::Literal(literal)) => ip == literal,
            _ => false,
        }
    }

    /// True when every domain `other` matches is also matched by `self`.
    pub fn covers(&self, other: &DomainPattern) -> bool {
        match (self, other) {
            (DomainPattern::Any, _) => true,
            (_, DomainPattern::Any) => false,
            (_, DomainPattern::Exact(b)) => self.matches(&MailDomain::Name(b.clone())),
            (_, DomainPattern::Literal(ip)) => self.matches(&MailDomain::Literal(*ip)),
            (DomainPattern::Subdomains(a), DomainPattern::Subdomains(b)) => b.is_within(a),
            (_, DomainPattern::Subdomains(_)) => false,
        }
    }

    /// Ordering for "most specific wins": exact names and address
    /// literals first, then the longest suffix, then `*`.
    pub fn specificity(&self) -> (u8, usize) {
        match self {
            DomainPattern::Exact(name) => (2, name.as_str().len()),
            DomainPattern::Literal(_) => (2, 0),
            DomainPattern::Subdomains(name) => (1, name.as_str().len()),
            DomainPattern::Any => (0, 0),
        }
    }
}

impl FromStr for DomainPattern {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(DomainPattern::Any);
        }
        if let Some(parent) = text.strip_prefix("*.") {
            return parent
                .parse()
                .map(DomainPattern::Subdomains)
                .map_err(|e: DomainError| e.to_string());
        }
        if text.contains('*') {
            return Err(format!(
                "invalid domain pattern {text:?}: write \"example.test\", \"*.example.test\" or \"*\""
            ));
        }
        match text.parse::<MailDomain>() {
            Ok(MailDomain::Name(name)) => Ok(DomainPattern::Exact(name)),
            Ok(MailDomain::Literal(ip)) => Ok(DomainPattern::Literal(ip)),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            DomainPattern::Exact(name) => write!(f, "{name}"),
            DomainPattern::Subdomains(name) => write!(f, "*.{name}"),
            DomainPattern::Literal(ip) => MailDomain::Literal(*ip).fmt(f),
            DomainPattern::Any => f.write_str("*"),
        }
    }
}

/// A certificate name pattern (RFC 6125 §6.4.3): a DNS name, optionally with
/// `*` as its whole left-most label. A lone `*` is refused: it would accept
/// any certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamePattern(pub DomainPattern);

impl FromStr for NamePattern {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.parse()? {
            DomainPattern::Any => Err(format!(
                "{text:?} would accept a certificate for any name: list the names, for example \"mail.example.test\" or \"*.example.test\""
            )),
            DomainPattern::Literal(_) => Err(format!(
                "{text:?} is an address literal; a certificate name is a DNS name, for example \"mail.example.test\" or \"*.example.test\""
            )),
            pattern => Ok(NamePattern(pattern)),
        }
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.fmt(f)
    }
}
