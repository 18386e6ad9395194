//! One certificate's fields, as `cert-info` shows them.

use rustls::pki_types::CertificateDer;
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::X509Certificate;

use crate::tls::dane::Tlsa;
use crate::tls::digest;
use crate::tls::x509::{self, AltNames};

/// What a partner or an administrator asks about a certificate. JSON field
/// names are stable (snake_case); `organization` follows the X.509 attribute name.
#[derive(Clone, Debug, Serialize)]
pub struct CertDetails {
    pub subject: String,
    pub common_name: Option<String>,
    pub alt_names: AltNames,
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub issuer: String,
    pub self_signed: bool,
    /// Colon-separated hex, as openssl prints it.
    pub serial: String,
    pub signature_algorithm: String,
    /// `RSA`, `EC`, `Ed25519`, `Ed448`.
    pub key_type: String,
    pub key_curve: Option<String>,
    pub key_bits: u32,
    /// `RSA 2048 bits`, `EC P-256 (256 bits)`.
    pub key_strength: String,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    /// Whole days until `not_after`; negative once expired.
    pub days_left: i64,
    /// SHA-256 of the certificate DER, `AB:CD:…` like `openssl x509 -fingerprint -sha256`.
    pub sha256_fingerprint: String,
    /// The same SHA-256 of the certificate as `sha256:…`, the form
    /// `fingerprints` takes for `tls = "pinned"` (pins this certificate only).
    pub certificate_pin: String,
    /// SHA-256 of the SubjectPublicKeyInfo DER, `sha256:…`, for `tls = "pinned"`
    /// (survives a renewal that keeps the key).
    pub spki_sha256: String,
    /// The DANE-EE record that publishes this key (RFC 7671 §5.1:
    /// usage 3, selector 1 SPKI, matching 1 SHA-256): `3 1 1 <hex>`, the
    /// data of `_25._tcp.MXHOST. IN TLSA` in a DNSSEC-signed zone.
    pub tlsa_3_1_1: String,
    /// Extended key usages (`serverAuth`, `clientAuth`, …); `null` when the
    /// certificate has no such extension, which allows every purpose.
    pub extended_key_usage: Option<Vec<String>>,
    #[serde(skip)]
    pub(crate) not_before_at: OffsetDateTime,
    #[serde(skip)]
    pub(crate) not_after_at: OffsetDateTime,
}

impl CertDetails {
    pub fn new(der: &CertificateDer<'_>, cert: &X509Certificate<'_>, now: OffsetDateTime) -> Self {
        let key = x509::describe_key(cert.public_key());
        let subject = cert.subject();
        let not_before_at = cert.validity().not_before.to_datetime();
        let not_after_at = cert.validity().not_after.to_datetime();
        CertDetails {
            subject: x509::dn(subject),
            common_name: x509::attribute(subject.iter_common_name()),
            alt_names: x509::alt_names(cert),
            organization: x509::attribute(subject.iter_organization()),
            organizational_unit: x509::attribute(subject.iter_organizational_unit()),
            issuer: x509::dn(cert.issuer()),
            self_signed: x509::self_issued(cert),
            serial: serial(&cert.raw_serial_as_string()),
            signature_algorithm: x509::oid_name(&cert.signature_algorithm.algorithm),
            key_strength: key.strength(),
            key_type: key.key_type,
            key_curve: key.curve,
            key_bits: key.bits,
            not_before: rfc3339(not_before_at),
            not_after: rfc3339(not_after_at),
            days_left: (not_after_at - now).whole_days(),
            sha256_fingerprint: digest::openssl_fingerprint(der),
            certificate_pin: digest::pin(der),
            spki_sha256: digest::pin(cert.public_key().raw),
            tlsa_3_1_1: Tlsa::dane_ee_spki_sha256(cert.public_key().raw).to_string(),
            extended_key_usage: x509::extended_key_usage(cert),
            not_before_at,
            not_after_at,
        }
    }

    /// CN and SANs in one line, as a partner types them into a connector.
    pub fn certificate_names(&self) -> String {
        let mut names: Vec<&str> = self.common_name.iter().map(String::as_str).collect();
        let sans = self.alt_names.dns.iter().chain(&self.alt_names.ip);
        for name in sans.chain(&self.alt_names.email) {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        names.join(", ")
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| x509::utc(at))
}

/// The serial as OpenSSL prints it: without the `00` byte DER adds to keep
/// a number with its high bit set positive.
fn serial(raw: &str) -> String {
    match raw.strip_prefix("00:") {
        Some(rest) if !rest.is_empty() => rest.to_string(),
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod serial_tests {
    #[test]
    fn der_sign_padding_is_not_part_of_the_number() {
        assert_eq!(super::serial("00:9f:01"), "9f:01");
        assert_eq!(super::serial("0a:01"), "0a:01");
        assert_eq!(super::serial("00"), "00");
    }
}
