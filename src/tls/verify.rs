//! What a server's certificate is worth: the chain, host, domain and pin
//! checks every TLS level reads (DESIGN.md §5), made whatever the level.

use rustls::pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::digest::sha256;
use super::trust::{check_name, TrustStore};
use crate::config::domain::MailDomain;
use crate::config::values::{DomainName, DomainPattern, Fingerprint, Host, NamePattern};

/// What verification of the server's certificate found. Every check is
/// made whatever the level, so that `probe` can say which levels would
/// accept the certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checks {
    /// The chain reaches a trusted anchor, or why not.
    pub chain: Result<(), String>,
    /// The certificate names the MX or smarthost (`verify-host`, and the
    /// "name mismatch" note of the lower levels), or why not.
    pub host: Result<(), String>,
    /// The certificate names one of the connector's `tls_domains`, by
    /// default the recipient domain or a subdomain (`verify-domain`), or
    /// why not.
    pub domain: Result<(), String>,
    /// For `pinned`: the certificate or its key is one of the fingerprints.
    pub pinned: bool,
}

/// What a certificate is checked against: the connector's trust store,
/// `tls_domains` and pins, the host connected to, the recipient domain.
pub struct Expected<'a> {
    pub trust: &'a TrustStore,
    pub host: &'a Host,
    pub domain: &'a MailDomain,
    pub tls_domains: &'a [NamePattern],
    pub fingerprints: &'a [Fingerprint],
}

/// Chain, name, domain and pin of `chain` (leaf first) at `now`, as the
/// connector's level will read them.
pub fn verify(chain: &[CertificateDer<'_>], expected: &Expected<'_>, now: UnixTime) -> Checks {
    let Some(leaf) = chain.first() else {
        let none = Err("no certificate".to_string());
        return Checks {
            chain: none.clone(),
            host: none.clone(),
            domain: none,
            pinned: false,
        };
    };
    let chain_result = expected
        .trust
        .verify_server_chain(chain, now)
        .map(|_| ())
        .map_err(|e| e.to_string());
    let host_name = match expected.host {
        Host::Name(name) => name.to_string(),
        Host::Ip(ip) => ip.to_string(),
    };
    let host = check_name(leaf, &host_name).map_err(|e| e.to_string());
    let domain = domain_names_match(leaf, expected.tls_domains, expected.domain);
    let leaf_hash = sha256(leaf);
    let spki_hash = X509Certificate::from_der(leaf)
        .ok()
        .map(|(_, cert)| sha256(cert.public_key().raw));
    let pinned = expected
        .fingerprints
        .iter()
        .any(|pin| pin.0 == leaf_hash || Some(pin.0) == spki_hash);
    Checks {
        chain: chain_result,
        host,
        domain,
        pinned,
    }
}

/// `verify-domain`: the certificate names one of `patterns`, or, when
/// none are configured, the recipient domain or one of its subdomains
/// (for an address literal: its IP address).
fn domain_names_match(
    leaf: &CertificateDer<'_>,
    patterns: &[NamePattern],
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
