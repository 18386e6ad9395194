//! Reading the fields of an X.509 certificate into the words administrators
//! and openssl use: "RSA 2048 bits", "EC P-256", "sha256WithRSAEncryption",
//! "2026-01-31 12:00:00 UTC".

use time::OffsetDateTime;
use x509_parser::prelude::{X509Certificate, X509Name};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// A date as openssl-minded administrators read it, always in UTC.
pub fn utc(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Key algorithm and size of a public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDescription {
    /// `RSA`, `EC`, `Ed25519`, `Ed448` or the algorithm OID.
    pub key_type: String,
    /// `P-256`, `P-384`, `P-521` for EC keys.
    pub curve: Option<String>,
    /// Bits of the key (RSA modulus, EC field size, 256/456 for Ed25519/Ed448).
    pub bits: u32,
}

impl KeyDescription {
    /// "RSA 2048 bits", "EC P-256 (256 bits)", "Ed25519 (256 bits)".
    pub fn strength(&self) -> String {
        match &self.curve {
            _ if self.key_type == "RSA" => format!("RSA {} bits", self.bits),
            Some(curve) => format!("{} {curve} ({} bits)", self.key_type, self.bits),
            None if self.bits > 0 => format!("{} ({} bits)", self.key_type, self.bits),
            None => self.key_type.clone(),
        }
    }
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_ED448: &str = "1.3.101.113";

pub fn describe_key(spki: &SubjectPublicKeyInfo<'_>) -> KeyDescription {
    let oid = spki.algorithm.algorithm.to_id_string();
    let parsed_bits = || {
        spki.parsed()
            .map(|k| match k {
                PublicKey::RSA(rsa) => rsa.key_size(),
                other => other.key_size(),
            })
            .unwrap_or(0) as u32
    };
    let (key_type, curve, bits) = match oid.as_str() {
        OID_RSA => ("RSA".to_owned(), None, parsed_bits()),
        OID_EC => {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let (curve, bits) = match curve_oid.as_deref() {
                Some("1.2.840.10045.3.1.7") => ("P-256".to_owned(), 256),
                Some("1.3.132.0.34") => ("P-384".to_owned(), 384),
                Some("1.3.132.0.35") => ("P-521".to_owned(), 521),
                Some(other) => (other.to_owned(), parsed_bits()),
                None => ("unknown curve".to_owned(), parsed_bits()),
            };
            ("EC".to_owned(), Some(curve), bits)
        }
        OID_ED25519 => ("Ed25519".to_owned(), None, 256),
        OID_ED448 => ("Ed448".to_owned(), None, 456),
        _ => (oid_name(&spki.algorithm.algorithm), None, parsed_bits()),
    };
    KeyDescription {
        key_type,
        curve,
        bits,
    }
}

/// openssl's short name for an OID (`sha256WithRSAEncryption`, `ecdsa-with-SHA256`), else dotted.
pub fn oid_name(oid: &x509_parser::oid_registry::Oid<'_>) -> String {
    match oid.to_id_string().as_str() {
        OID_ED25519 => "ED25519".to_owned(),
        OID_ED448 => "ED448".to_owned(),
        "1.2.840.113549.1.1.10" => "rsassaPss".to_owned(),
        _ => x509_parser::objects::oid2sn(oid, x509_parser::objects::oid_registry())
            .map(str::to_owned)
            .unwrap_or_else(|_| oid.to_id_string()),
    }
}

/// The extended key usages of a certificate in OpenSSL's short names
/// (`serverAuth`, `clientAuth`, …; other purposes as dotted OIDs), or
/// `None` when the extension is absent, which allows every purpose.
pub fn extended_key_usage(cert: &X509Certificate<'_>) -> Option<Vec<String>> {
    let eku = cert.extended_key_usage().ok().flatten()?.value;
    let known = [
        (eku.any, "anyExtendedKeyUsage"),
        (eku.server_auth, "serverAuth"),
        (eku.client_auth, "clientAuth"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "OCSPSigning"),
    ];
    let named = known
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| name.to_owned());
    Some(
        named
            .chain(eku.other.iter().map(|o| o.to_id_string()))
            .collect(),
    )
}

/// Whether OpenSSL-based peers accept a certificate with these extended
/// key usages ([`extended_key_usage`]) as a TLS client's: no such
/// extension at all, or one that names `clientAuth` or any purpose.
/// Postfix otherwise refuses it: "not designated for use as a client
/// certificate".
pub fn allows_client_auth(usages: Option<&[String]>) -> bool {
    usages.is_none_or(|usages| {
        usages
            .iter()
            .any(|u| u == "clientAuth" || u == "anyExtendedKeyUsage")
    })
}

/// The values of one attribute (CN, O, OU) of a name, joined with ", ".
pub fn attribute<'a, I>(values: I) -> Option<String>
where
    I: Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
{
    let values: Vec<String> = values
        .map(|v| match v.as_str() {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(v.as_slice()).into_owned(),
        })
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// `CN=…, O=…` as x509-parser prints it; the DER when a value is not text.
pub fn dn(name: &X509Name<'_>) -> String {
    name.to_string()
}

/// A certificate is self-issued when subject and issuer are the same name.
pub fn self_issued(cert: &X509Certificate<'_>) -> bool {
    cert.subject().as_raw() == cert.issuer().as_raw()
}

/// Readable DN of a trust anchor's subject (webpki keeps it without the outer SEQUENCE).
pub fn anchor_subject(subject_value: &[u8]) -> String {
    use x509_parser::prelude::FromDer;
    let mut der = vec![0x30];
    let len = subject_value.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        der.push(0x80 | bytes.len() as u8);
        der.extend_from_slice(&bytes);
    }
    der.extend_from_slice(subject_value);
    match X509Name::from_der(&der) {
        Ok((_, name)) => dn(&name),
        Err(_) => "(unreadable name)".to_owned(),
    }
}

/// Subject alternative names by kind, as text.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AltNames {
    pub dns: Vec<String>,
    pub ip: Vec<String>,
    pub email: Vec<String>,
}

pub fn alt_names(cert: &X509Certificate<'_>) -> AltNames {
    use x509_parser::extensions::GeneralName;
    let mut names = AltNames::default();
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return names;
    };
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(dns) => names.dns.push((*dns).to_owned()),
            GeneralName::RFC822Name(email) => names.email.push((*email).to_owned()),
            GeneralName::IPAddress(bytes) => names.ip.push(ip_text(bytes)),
            _ => {}
        }
    }
    names
}

fn ip_text(bytes: &[u8]) -> String {
    use std::net::IpAddr;
    match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => format!("(malformed IP of {} octets)", bytes.len()),
    }
}
