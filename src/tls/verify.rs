//! What a server's certificate is worth: the chain, host, domain and pin
//! checks every TLS level reads (DESIGN.md §5), made whatever the level.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::trust::check_name;
use crate::config::domain::MailDomain;
use crate::config::values::{DomainName, DomainPattern};

/// `verify-domain`: the certificate names one of `patterns`, or, when
/// none are configured, the recipient domain or one of its subdomains
/// (for an address literal: its IP address).
pub fn domain_names_match(
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
