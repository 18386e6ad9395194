//! `cert-info`: the certificate table a partner needs to set up forced TLS.
//!
//! Exchange Online's certificate-based connectors (and most partners' MTAs)
//! ask for the root issuer, the certificate name, organisation, unit and key
//! strength; administrators also want fingerprints and whether the chain
//! verifies. The chain comes from a PEM file or from a live server
//! (`--connect`, optionally after SMTP STARTTLS); untrusted chains are
//! reported too, with the reason they do not verify.

mod details;
mod text;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, UnixTime};
use serde::Serialize;

pub use details::CertDetails;

use super::certs::{self, CertError};
use super::trust::TrustStore;

/// The steps of `--connect`, named in timeouts and errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Greeting,
    Ehlo,
    StartTls,
    Handshake,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "TCP connect",
            Phase::Greeting => "SMTP greeting",
            Phase::Ehlo => "EHLO reply",
            Phase::StartTls => "STARTTLS reply",
            Phase::Handshake => "TLS handshake",
        })
    }
}

/// Everything `cert-info` prints, in text or JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `file /path/to/cert.pem` or `server host:port`.
    pub source: String,
    /// Leaf first, in the order given.
    pub certificates: Vec<CertDetails>,
    pub chain: ChainSummary,
    pub connection: Option<Connection>,
    pub partner: PartnerInfo,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChainSummary {
    /// Subject of the root the chain ends at, or `unknown (…)`.
    pub root_issuer: String,
    pub verified: bool,
    /// Subject of the trust anchor the chain verified against.
    pub trust_anchor: Option<String>,
    /// Why it does not verify ("self-signed", "issuer not trusted: …", "expired").
    pub problem: Option<String>,
}

/// TLS details of a `--connect` session.
#[derive(Clone, Debug, Serialize)]
pub struct Connection {
    pub target: String,
    /// The address actually connected to.
    pub address: String,
    pub starttls: bool,
    /// Sent as SNI (when a DNS name) and checked against the certificate.
    pub server_name: String,
    /// `TLSv1.3`, `TLSv1.2` (as OpenSSL and our Received header write them).
    pub tls_version: String,
    pub cipher_suite: String,
    pub key_exchange_group: Option<String>,
    pub name_matches: bool,
    pub name_problem: Option<String>,
}

/// What the Exchange Online docs ask for a certificate-based connector.
#[derive(Clone, Debug, Serialize)]
pub struct PartnerInfo {
    pub root_issuer: String,
    pub certificate_name: String,
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub key_strength: String,
}

impl Report {
    pub fn to_text(&self) -> String {
        text::render(self)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

pub struct ConnectRequest {
    pub target: String,
    pub starttls: bool,
    pub servername: Option<String>,
    pub ca_files: Vec<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CertInfoError {
    #[error(transparent)]
    File(#[from] CertError),
    #[error("{target:?} is not HOST:PORT ({reason}); write IPv6 addresses as [::1]:25")]
    BadTarget { target: String, reason: String },
    #[error("{name:?} is not a valid server name (a DNS name or an IP address)")]
    BadServerName { name: String },
    #[error("{target}: timed out after {secs}s waiting for the {phase}")]
    Timeout {
        phase: Phase,
        target: String,
        secs: u64,
    },
    #[error("{target}: {phase} failed: {source}")]
    Io {
        phase: Phase,
        target: String,
        source: std::io::Error,
    },
    #[error("{target}: connection closed by the server during the {phase}")]
    Closed { phase: Phase, target: String },
    #[error("{target}: {message}")]
    Protocol { target: String, message: String },
    #[error("{target}: server does not offer STARTTLS (EHLO answered: {ehlo}); try without --starttls if this is an implicit-TLS port")]
    NoStartTls { target: String, ehlo: String },
    #[error("{target}: the server sent no certificate")]
    NoCertificate { target: String },
}

impl CertInfoError {
    /// True when the fault is in what the user asked (bad file, bad HOST:PORT), not the network.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::File(_) | Self::BadTarget { .. } | Self::BadServerName { .. }
        )
    }
}

pub fn from_file(path: &Path, ca_files: &[PathBuf]) -> Result<Report, CertInfoError> {
    let store = TrustStore::with_ca_files(ca_files)?;
    let chain = certs::read_certificates(path)?;
    build(
        format!("file {}", path.display()),
        &chain,
        &store,
        None,
        |message| {
            CertError::Invalid {
                path: path.to_owned(),
                message,
            }
            .into()
        },
    )
}

/// Assembles the report; `malformed` turns a parse failure into the caller's error.
pub fn build(
    source: String,
    chain: &[CertificateDer<'_>],
    store: &TrustStore,
    connection: Option<Connection>,
    malformed: impl Fn(String) -> CertInfoError,
) -> Result<Report, CertInfoError> {
    let parsed = certs::parse_all(Path::new(""), chain).map_err(|e| match e {
        CertError::Invalid { message, .. } => malformed(message),
        other => other.into(),
    })?;
    let now = time::OffsetDateTime::now_utc();
    let certificates: Vec<CertDetails> = chain
        .iter()
        .zip(&parsed)
        .map(|(der, cert)| CertDetails::new(der, cert, now))
        .collect();
    let verdict = store.verify_server_chain(chain, UnixTime::now());
    let top = parsed
        .last()
        .ok_or_else(|| malformed("no certificate".into()))?;
    // The last self-signed certificate of the chain, else the anchor that
    // verified it, else an anchor named as the top certificate's issuer.
    let root_issuer = parsed
        .iter()
        .rev()
        .find(|c| super::x509::self_issued(c))
        .map(|c| super::x509::dn(c.subject()))
        .or_else(|| verdict.as_ref().ok().map(|v| v.anchor.clone()))
        .or_else(|| store.anchor_named(top.issuer().as_raw()))
        .unwrap_or_else(|| "unknown (not in the chain or trust store)".to_owned());
    let leaf = &certificates[0];
    let partner = PartnerInfo {
        root_issuer: root_issuer.clone(),
        certificate_name: leaf.certificate_names(),
        organization: leaf.organization.clone(),
        organizational_unit: leaf.organizational_unit.clone(),
        key_strength: leaf.key_strength.clone(),
    };
    let chain = ChainSummary {
        root_issuer,
        verified: verdict.is_ok(),
        trust_anchor: verdict.as_ref().ok().map(|v| v.anchor.clone()),
        problem: verdict.err().map(|e| e.to_string()),
    };
    Ok(Report {
        source,
        certificates,
        chain,
        connection,
        partner,
    })
}
