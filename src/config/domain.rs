//! The one canonical form of a mail domain, in which every comparison is
//! made: accepted domains, relay control, sender restrictions, outbound
//! routing, `tls_domains`, certificate names.
//!
//! A DNS name is canonical in its IDNA 2008 A-label form after the UTS #46
//! mapping (case folding, full-width and other compatibility forms,
//! U-labels to `xn--`), lower case, without a trailing dot. Without this,
//! `bücher.test`, `xn--bcher-kva.test` and `ＢＵＣＨＥＲ.test`-like
//! spellings are three domains to a string comparison and one domain to
//! DNS and to every mail server downstream, which is how a restricted
//! sender domain was bypassed (issue 12, item 3).
//!
//! An address literal (RFC 5321 §4.1.3) is canonical as its IP address,
//! an IPv4-mapped IPv6 address as the IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

use super::values::DomainName;

/// Why text is not a domain, in words for a configuration error or a log
/// line; the inbound session picks its reply by the variant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Not RFC 5321 domain syntax once mapped (empty label, a character
    /// outside letters, digits, `-` and `_`, too long …).
    #[error("invalid domain name {text:?}: {why}")]
    Syntax { text: String, why: &'static str },
    /// A dotted quad where a domain belongs: RFC 5321 writes an IP address
    /// as an address literal, in brackets.
    #[error("invalid domain name {text:?}: this is an IP address, not a domain name; write the address literal [{text}]")]
    BareAddress { text: String },
    /// Bracketed, but not an IPv4 or `IPv6:` address.
    #[error("invalid address literal {text:?}: {why}")]
    Literal { text: String, why: &'static str },
    /// Unicode (or an `xn--` label) with no IDNA 2008 A-label form under
    /// UTS #46: disallowed code points, broken Punycode, bidi or joiner
    /// rules. No such name can exist in DNS.
    #[error("domain name {text:?} has no IDNA 2008 A-label form (UTS #46 mapping failed)")]
    Unmappable { text: String },
}

/// The canonical A-label form of a DNS name: UTS #46 mapping (IDNA 2008,
/// non-transitional), one trailing dot dropped, then the RFC 5321 §4.1.2
/// rules on the ASCII result (`_` allowed, as in `_mta-sts` names).
/// Every domain the relay compares comes through here, by
/// `DomainName::from_str`.
pub fn canonical(text: &str) -> Result<String, DomainError> {
    let syntax = |why| DomainError::Syntax {
        text: text.to_string(),
        why,
    };
    if text.is_empty() {
        return Err(syntax("it is empty"));
    }
    // No ASCII deny list and no length rule here: the checks below give
    // better reasons, and `_` must pass.
    let mapped = Uts46::new()
        .to_ascii(
            text.as_bytes(),
            AsciiDenyList::EMPTY,
            Hyphens::Allow,
            DnsLength::Ignore,
        )
        .map_err(|_| DomainError::Unmappable {
            text: text.to_string(),
        })?;
    let name = mapped.strip_suffix('.').unwrap_or(&mapped);
    if name.is_empty() {
        return Err(syntax("it is empty"));
    }
    if name.len() > 253 {
        return Err(syntax("longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(syntax(
                "it has an empty label (two dots in a row, or a leading dot)",
            ));
        }
        if label.len() > 63 {
            return Err(syntax("a label is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(syntax("only letters, digits, '-' and '.' are allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(syntax("a label cannot start or end with '-'"));
        }
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err(DomainError::BareAddress {
            text: name.to_string(),
        });
    }
    Ok(name.to_string())
}

/// What follows the `@` of a mail address, canonical: a DNS name or an
/// address literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MailDomain {
    Name(DomainName),
    Literal(IpAddr),
}

impl MailDomain {
    /// The domain of `address` (after its last `@`); `None` for the null
    /// path and for an address without a domain (`<postmaster>` resolved
    /// by the caller).
    pub fn of_address(address: &str) -> Option<Result<MailDomain, DomainError>> {
        address.rsplit_once('@').map(|(_, domain)| domain.parse())
    }
}

impl FromStr for MailDomain {
    type Err = DomainError;
    fn from_str(text: &str) -> Result<Self, DomainError> {
        match text.strip_prefix('[') {
            Some(rest) => literal(text, rest.strip_suffix(']')).map(MailDomain::Literal),
            None => text.parse().map(MailDomain::Name),
        }
    }
}

/// RFC 5321 §4.1.3: `[IPv4]` or `[IPv6:address]`; a General-address-literal
/// (`[tag:content]`) has no registered tag but IPv6, so it is refused.
fn literal(text: &str, inside: Option<&str>) -> Result<IpAddr, DomainError> {
    let bad = |why| DomainError::Literal {
        text: text.to_string(),
        why,
    };
    let inside = inside.ok_or_else(|| bad("no closing ']'"))?;
    let tag = inside.get(..5).filter(|t| t.eq_ignore_ascii_case("IPv6:"));
    if tag.is_some() {
        let v6 = inside[5..]
            .parse::<Ipv6Addr>()
            .map_err(|_| bad("not an IPv6 address after \"IPv6:\""))?;
        return Ok(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4));
    }
    if inside.contains(':') {
        return Err(bad(
            "general address literals ([tag:content]) are not supported; write [192.0.2.1] or [IPv6:2001:db8::1]",
        ));
    }
    inside
        .parse::<Ipv4Addr>()
        .map(IpAddr::V4)
        .map_err(|_| bad("not an IPv4 address; write [192.0.2.1] or [IPv6:2001:db8::1]"))
}

impl fmt::Display for MailDomain {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            MailDomain::Name(name) => name.fmt(f),
            MailDomain::Literal(IpAddr::V4(ip)) => write!(f, "[{ip}]"),
            MailDomain::Literal(IpAddr::V6(ip)) => write!(f, "[IPv6:{ip}]"),
        }
    }
}

#[cfg(test)]
#[path = "domain_tests.rs"]
mod tests;
