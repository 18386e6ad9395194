//! TLSA records (RFC 6698 §2) and checking a presented certificate chain
//! against them under the rules of DANE for SMTP (RFC 7672 §3). Pure: no
//! DNS, no sockets; the DNSSEC side is `crate::dns`, the per-host decision
//! `crate::outbound::dane`.
//!
//! * DANE-EE (usage 3): the leaf's certificate (selector 0) or public key
//!   (selector 1) matches; no name, chain or expiry check (RFC 7672 §3.1.1).
//! * DANE-TA (usage 2): a certificate of the presented chain matches, the
//!   chain builds from it to the leaf (webpki, with that certificate as the
//!   only anchor), and the leaf names the MX host or the next-hop domain
//!   (RFC 7672 §3.1.2, §3.2.2). The chain below the anchor is checked for
//!   expiry like any PKIX chain.
//! * Usages 0 and 1 are not usable for SMTP (RFC 7672 §3.1.3); neither are
//!   unknown selectors or matching types.
//!
//! Delivery asks [`authenticate`] inside the handshake through
//! `crate::tls::client::DaneVerifier`; `probe` prints [`check_record`]
//! for each record.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest::{digest, SHA256, SHA512};
use rustls::pki_types::{CertificateDer, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::trust::{check_name, TrustStore};

/// One TLSA record: certificate usage, selector, matching type, data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

pub const DANE_TA: u8 = 2;
pub const DANE_EE: u8 = 3;

impl Tlsa {
    /// The `3 1 1` record (DANE-EE, SubjectPublicKeyInfo, SHA-256) that
    /// publishes `spki` (DER), the form RFC 7671 §5.1 recommends.
    pub fn dane_ee_spki_sha256(spki: &[u8]) -> Tlsa {
        Tlsa {
            usage: DANE_EE,
            selector: 1,
            matching: 1,
            data: digest(&SHA256, spki).as_ref().to_vec(),
        }
    }

    /// Usage 2 or 3 with a known selector and matching type.
    pub fn usable(&self) -> bool {
        matches!(self.usage, DANE_TA | DANE_EE)
            && matches!(self.selector, 0 | 1)
            && matches!(self.matching, 0..=2)
    }

    /// Whether this record's data matches `cert` (DER), by its selector
    /// and matching type; `false` for what cannot be read.
    fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let selected: &[u8] = match self.selector {
            0 => cert.as_ref(),
            1 => match X509Certificate::from_der(cert) {
                Ok((_, parsed)) => return self.matches_data(parsed.public_key().raw),
                Err(_) => return false,
            },
            _ => return false,
        };
        self.matches_data(selected)
    }

    fn matches_data(&self, selected: &[u8]) -> bool {
        match self.matching {
            0 => selected == self.data.as_slice(),
            1 => digest(&SHA256, selected).as_ref() == self.data.as_slice(),
            2 => digest(&SHA512, selected).as_ref() == self.data.as_slice(),
            _ => false,
        }
    }
}

/// `3 1 1 <lowercase hex>`, the presentation format of RFC 6698 §2.2.
impl fmt::Display for Tlsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: String = self.data.iter().map(|b| format!("{b:02x}")).collect();
        write!(
            f,
            "{} {} {} {hex}",
            self.usage, self.selector, self.matching
        )
    }
}

impl FromStr for Tlsa {
    type Err = String;

    /// `USAGE SELECTOR MATCHING HEX`; the hex may be split by spaces.
    fn from_str(text: &str) -> Result<Tlsa, String> {
        let mut words = text.split_whitespace();
        let mut number = |what: &str| -> Result<u8, String> {
            let word = words.next().ok_or(format!("missing {what}"))?;
            word.parse()
                .map_err(|_| format!("{what} {word:?} is not 0-255"))
        };
        let (usage, selector, matching) = (
            number("usage")?,
            number("selector")?,
            number("matching type")?,
        );
        let hex: String = words.collect();
        if hex.is_empty() || !hex.len().is_multiple_of(2) {
            return Err(format!("{hex:?} is not hex bytes"));
        }
        let data = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("x"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| format!("{hex:?} is not hex bytes"))?;
        Ok(Tlsa {
            usage,
            selector,
            matching,
            data,
        })
    }
}

/// How one record fares against a presented chain (for `probe`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordCheck {
    /// The record authenticates the server.
    Matches,
    /// Usage 0/1 or an unknown selector or matching type: ignored.
    Unusable,
    /// No certificate of the chain (the leaf, for usage 3) matches.
    NoMatch,
    /// Usage 2: a certificate matches but the chain does not build from it.
    ChainFails(String),
    /// Usage 2: the chain builds but the leaf names none of the names.
    NameFails(String),
}

/// Checks `chain` (leaf first) against one record. `names` are the
/// reference identifiers for usage 2: the MX host, then the next-hop domain.
pub fn check_record(
    record: &Tlsa,
    chain: &[CertificateDer<'_>],
    names: &[&str],
    now: UnixTime,
) -> RecordCheck {
    if !record.usable() {
        return RecordCheck::Unusable;
    }
    let Some((leaf, rest)) = chain.split_first() else {
        return RecordCheck::NoMatch;
    };
    if record.usage == DANE_EE {
        return match record.matches(leaf) {
            true => RecordCheck::Matches,
            false => RecordCheck::NoMatch,
        };
    }
    let mut verdict = RecordCheck::NoMatch;
    for anchor in chain.iter().filter(|c| record.matches(c)) {
        verdict = match chain_from(anchor, leaf, rest, now) {
            Err(reason) => RecordCheck::ChainFails(reason),
            Ok(()) => match names_one_of(leaf, names) {
                Ok(()) => return RecordCheck::Matches,
                Err(reason) => RecordCheck::NameFails(reason),
            },
        };
    }
    verdict
}

/// The record that authenticated the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    pub record: Tlsa,
}

/// Why no record authenticated the server, in an administrator's words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DaneError {
    #[error("no certificate presented")]
    NoCertificate,
    #[error("no usable TLSA record (usage 2 or 3)")]
    NoUsableRecord,
    #[error("the certificate matches none of the {usable} usable TLSA records")]
    NoMatch { usable: usize },
    #[error("DANE-TA: {0}")]
    TrustAnchor(String),
}

/// Authenticates `chain` by `records` (RFC 7672 §3): the first usable
/// record that matches wins. The error keeps the most telling failure of a
/// DANE-TA record whose anchor was found (a chain or name problem).
pub fn authenticate(
    records: &[Tlsa],
    chain: &[CertificateDer<'_>],
    names: &[&str],
    now: UnixTime,
) -> Result<Authenticated, DaneError> {
    if chain.is_empty() {
        return Err(DaneError::NoCertificate);
    }
    let usable: Vec<&Tlsa> = records.iter().filter(|r| r.usable()).collect();
    if usable.is_empty() {
        return Err(DaneError::NoUsableRecord);
    }
    let mut telling = None;
    for record in &usable {
        match check_record(record, chain, names, now) {
            RecordCheck::Matches => {
                return Ok(Authenticated {
                    record: (*record).clone(),
                })
            }
            RecordCheck::ChainFails(reason) | RecordCheck::NameFails(reason) => {
                telling.get_or_insert(reason);
            }
            RecordCheck::NoMatch | RecordCheck::Unusable => {}
        }
    }
    Err(match telling {
        Some(reason) => DaneError::TrustAnchor(reason),
        None => DaneError::NoMatch {
            usable: usable.len(),
        },
    })
}

/// Builds the chain from `anchor` (a certificate the server sent) to `leaf`.
fn chain_from(
    anchor: &CertificateDer<'_>,
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), String> {
    let mut store = TrustStore::empty();
    store
        .add_certificates(std::slice::from_ref(anchor))
        .map_err(|e| format!("the matching certificate cannot be an anchor: {e}"))?;
    if anchor == leaf {
        // A leaf that is its own anchor: nothing to build.
        return Ok(());
    }
    let end_entity =
        EndEntityCert::try_from(leaf).map_err(|e| format!("leaf unreadable ({e:?})"))?;
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            store.anchors(),
            intermediates,
            now,
            KeyUsage::server_auth(),
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| {
            format!("the chain does not build from the TLSA trust anchor to the leaf ({e:?})")
        })
}

fn names_one_of(leaf: &CertificateDer<'_>, names: &[&str]) -> Result<(), String> {
    let mut last = "no reference name to check".to_string();
    for name in names {
        match check_name(leaf, name) {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

#[cfg(test)]
#[path = "dane_tests.rs"]
mod tests;
