//! The aligned text table of `cert-info`.

use std::fmt::Write;

use super::{CertDetails, Report};
use crate::tls::x509::{self, utc};

const WIDTH: usize = 22;
const PARTNER_WIDTH: usize = 36;

fn row(out: &mut String, width: usize, label: &str, value: &str) {
    let _ = writeln!(out, "  {label:<width$} {value}");
}

fn optional_row(out: &mut String, label: &str, values: &[String]) {
    if !values.is_empty() {
        row(out, WIDTH, label, &values.join(", "));
    }
}

fn or_none(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("(none)")
}

pub(super) fn render(report: &Report) -> String {
    let mut out = String::new();
    let count = report.certificates.len();
    let plural = if count == 1 { "" } else { "s" };
    let _ = writeln!(
        out,
        "Chain from {} ({count} certificate{plural})",
        report.source
    );
    for (i, cert) in report.certificates.iter().enumerate() {
        let role = match i {
            0 => "leaf",
            _ if cert.self_signed => "root",
            _ => "intermediate",
        };
        let _ = writeln!(out, "\nCertificate {} ({role})", i + 1);
        certificate(&mut out, cert);
    }

    let chain = &report.chain;
    let _ = writeln!(out, "\nChain");
    row(&mut out, WIDTH, "Root issuer", &chain.root_issuer);
    let verified = match (&chain.trust_anchor, &chain.problem) {
        (Some(anchor), _) => format!("yes (trust anchor {anchor})"),
        (None, Some(problem)) => format!("no: {problem}"),
        (None, None) => "no".to_owned(),
    };
    row(&mut out, WIDTH, "Verified", &verified);

    if let Some(c) = &report.connection {
        let _ = writeln!(out, "\nConnection");
        let how = if c.starttls {
            "SMTP STARTTLS"
        } else {
            "implicit TLS"
        };
        row(
            &mut out,
            WIDTH,
            "Server",
            &format!("{} ({}, {how})", c.target, c.address),
        );
        row(&mut out, WIDTH, "Server name", &c.server_name);
        row(&mut out, WIDTH, "TLS version", &c.tls_version);
        row(&mut out, WIDTH, "Cipher suite", &c.cipher_suite);
        row(
            &mut out,
            WIDTH,
            "Key exchange",
            or_none(&c.key_exchange_group),
        );
        let matches = match &c.name_problem {
            None => "yes".to_owned(),
            Some(problem) => format!("no: {problem}"),
        };
        row(&mut out, WIDTH, "Name matches", &matches);
    }

    let p = &report.partner;
    let _ = writeln!(
        out,
        "\nFor your partner (certificate-based connector, e.g. Exchange Online)"
    );
    row(
        &mut out,
        PARTNER_WIDTH,
        "Certificate authority root issuer",
        &p.root_issuer,
    );
    row(
        &mut out,
        PARTNER_WIDTH,
        "Certificate name (CN / SANs)",
        &p.certificate_name,
    );
    row(
        &mut out,
        PARTNER_WIDTH,
        "Organization (O)",
        or_none(&p.organization),
    );
    row(
        &mut out,
        PARTNER_WIDTH,
        "Organizational unit (OU)",
        or_none(&p.organizational_unit),
    );
    row(&mut out, PARTNER_WIDTH, "Key strength", &p.key_strength);
    dane(&mut out, &report.certificates[0]);
    out
}

/// The TLSA record for the leaf, ready for a zone file (RFC 7672 §3.1.1).
fn dane(out: &mut String, leaf: &CertDetails) {
    let host = (leaf.alt_names.dns.first())
        .or(leaf.common_name.as_ref())
        .filter(|name| !name.starts_with('*'))
        .map_or("MXHOST".to_string(), |name| {
            name.trim_end_matches('.').to_string()
        });
    let _ = writeln!(
        out,
        "\nFor DANE (in the DNSSEC-signed zone of each MX host that serves this certificate; port 25)"
    );
    let _ = writeln!(out, "  _25._tcp.{host}. IN TLSA {}", leaf.tlsa_3_1_1);
}

fn certificate(out: &mut String, cert: &CertDetails) {
    row(out, WIDTH, "Subject", &cert.subject);
    row(out, WIDTH, "Common name (CN)", or_none(&cert.common_name));
    optional_row(out, "DNS names", &cert.alt_names.dns);
    optional_row(out, "IP addresses", &cert.alt_names.ip);
    optional_row(out, "Email addresses", &cert.alt_names.email);
    row(out, WIDTH, "Organization (O)", or_none(&cert.organization));
    row(
        out,
        WIDTH,
        "Org. unit (OU)",
        or_none(&cert.organizational_unit),
    );
    row(out, WIDTH, "Issuer", &cert.issuer);
    row(out, WIDTH, "Serial", &cert.serial);
    row(out, WIDTH, "Signature algorithm", &cert.signature_algorithm);
    row(out, WIDTH, "Key", &cert.key_strength);
    let usages = cert.extended_key_usage.as_deref();
    let usage = match usages {
        None => "(not restricted)".to_string(),
        Some(list) if x509::allows_client_auth(usages) => list.join(", "),
        Some(list) => format!(
            "{} (no clientAuth: receivers refuse it as a client certificate)",
            list.join(", ")
        ),
    };
    row(out, WIDTH, "Extended key usage", &usage);
    row(out, WIDTH, "Valid from", &utc(cert.not_before_at));
    let left = match cert.days_left {
        d if d < 0 => format!("EXPIRED {} days ago", -d),
        d => format!("{d} days left"),
    };
    row(
        out,
        WIDTH,
        "Valid until",
        &format!("{} ({left})", utc(cert.not_after_at)),
    );
    row(out, WIDTH, "SHA-256 fingerprint", &cert.sha256_fingerprint);
    row(out, WIDTH, "Certificate pin", &cert.certificate_pin);
    row(out, WIDTH, "Public key pin", &cert.spki_sha256);
    row(out, WIDTH, "TLSA 3 1 1", &cert.tlsa_3_1_1);
}
