//! Trust anchors (webpki roots plus configured CA files) and chain verification.
//!
//! The outcome is phrased for administrators ("self-signed", "issuer not
//! trusted", "expired") because it ends up in `cert-info`, in delivery log
//! lines and in DSNs. The chain check and the name check are separate on
//! purpose: DESIGN.md §5 treats "chain does not verify" and "name does not
//! match" differently per TLS level (`verify-ca` ignores the name).

use std::path::PathBuf;

use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::certs::{load_ca_file, CertError};
use super::x509;

/// The anchors a chain may lead to.
#[derive(Clone, Debug)]
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
}

/// A chain that verified, and the anchor it ends at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Subject of the trust anchor, e.g. `CN=ISRG Root X1, O=Internet Security Research Group, C=US`.
    pub anchor: String,
}

/// Why a chain does not verify, in the words of an administrator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("no certificate presented")]
    Empty,
    #[error("self-signed certificate ({subject}); trust it with a CA file or pin its fingerprint")]
    SelfSigned { subject: String },
    #[error("issuer not trusted: {issuer} is not in the trust store (add its CA file, or the chain lacks an intermediate)")]
    UnknownIssuer { issuer: String },
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("bad signature in the chain")]
    BadSignature,
    #[error("not allowed for this use (its extended key usage lacks {0} authentication)")]
    WrongUsage(&'static str),
    #[error("the leaf is a CA certificate")]
    CaAsLeaf,
    #[error("revoked or distrusted")]
    Distrusted,
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
    #[error("malformed certificate ({0})")]
    Malformed(String),
    #[error("does not verify ({0})")]
    Other(String),
}

/// Why a certificate does not match the name we expect.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{name:?} is not a DNS name or IP address")]
    InvalidName { name: String },
    #[error("certificate is not valid for {name} (it names: {presented})")]
    Mismatch { name: String, presented: String },
    #[error("cannot read the certificate to check its names ({0})")]
    Malformed(String),
}

impl TrustStore {
    /// The Mozilla roots as shipped by webpki-roots: what public MX hosts use.
    pub fn webpki_roots() -> Self {
        TrustStore {
            anchors: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }
    }

    /// An empty store, for connectors that trust only their own CA files.
    pub fn empty() -> Self {
        TrustStore {
            anchors: Vec::new(),
        }
    }

    /// webpki roots plus every certificate of each CA file.
    pub fn with_ca_files(paths: &[PathBuf]) -> Result<Self, CertError> {
        let mut store = Self::webpki_roots();
        for path in paths {
            let certs = load_ca_file(path)?;
            store
                .add_certificates(&certs)
                .map_err(|message| CertError::Invalid {
                    path: path.clone(),
                    message,
                })?;
        }
        Ok(store)
    }

    /// Adds certificates as anchors; the error says which one is unusable.
    pub fn add_certificates(&mut self, certs: &[CertificateDer<'_>]) -> Result<(), String> {
        for (i, cert) in certs.iter().enumerate() {
            let anchor = webpki::anchor_from_trusted_cert(cert)
                .map_err(|e| format!("certificate #{} cannot be a trust anchor ({e:?})", i + 1))?;
            self.anchors.push(anchor.to_owned());
        }
        Ok(())
    }

    pub fn anchors(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }

    /// Subject of an anchor whose name equals `issuer` (DER of an X.509 Name, with its SEQUENCE).
    pub fn anchor_named(&self, issuer: &[u8]) -> Option<String> {
        self.anchors
            .iter()
            .find(|a| name_value(issuer) == Some(a.subject.as_ref()))
            .map(|a| x509::anchor_subject(a.subject.as_ref()))
    }

    /// Verifies `chain` (leaf first, then intermediates) for server authentication at `now`.
    pub fn verify_server_chain(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Verified, ChainError> {
        self.verify_chain(chain, now, Usage::Server)
    }

    /// Verifies a client's chain (inbound mutual TLS) at `now`.
    pub fn verify_client_chain(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Verified, ChainError> {
        self.verify_chain(chain, now, Usage::Client)
    }

    fn verify_chain(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
        usage: Usage,
    ) -> Result<Verified, ChainError> {
        let (leaf, intermediates) = chain.split_first().ok_or(ChainError::Empty)?;
        let end_entity =
            EndEntityCert::try_from(leaf).map_err(|e| ChainError::Malformed(format!("{e:?}")))?;
        let path = end_entity.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            intermediates,
            now,
            match usage {
                Usage::Server => KeyUsage::server_auth(),
                Usage::Client => KeyUsage::client_auth(),
            },
            None,
            None,
        );
        match path {
            Ok(path) => Ok(Verified {
                anchor: x509::anchor_subject(path.anchor().subject.as_ref()),
            }),
            Err(e) => Err(explain(e, chain, usage)),
        }
    }
}

/// Checks the leaf against a DNS name (RFC 6125 wildcards as webpki applies
/// them) or an IP address (IP SANs only).
pub fn check_name(leaf: &CertificateDer<'_>, name: &str) -> Result<(), NameError> {
    let server_name = ServerName::try_from(name).map_err(|_| NameError::InvalidName {
        name: name.to_owned(),
    })?;
    let end_entity =
        EndEntityCert::try_from(leaf).map_err(|e| NameError::Malformed(format!("{e:?}")))?;
    end_entity
        .verify_is_valid_for_subject_name(&server_name)
        .map_err(|_| NameError::Mismatch {
            name: name.to_owned(),
            presented: presented_names(leaf),
        })
}

fn presented_names(leaf: &CertificateDer<'_>) -> String {
    let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
        return "unreadable".to_owned();
    };
    let names = x509::alt_names(&cert);
    let all: Vec<String> = names.dns.into_iter().chain(names.ip).collect();
    if all.is_empty() {
        "no DNS or IP names".to_owned()
    } else {
        all.join(", ")
    }
}

/// The contents of a DER SEQUENCE (webpki stores anchor names without the header).
fn name_value(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if tag != 0x30 {
        return None;
    }
    if first < 0x80 {
        return rest.get(..usize::from(first));
    }
    let count = usize::from(first & 0x7f);
    let (len_bytes, body) = (rest.get(..count)?, rest.get(count..)?);
    let len = len_bytes
        .iter()
        .fold(0usize, |n, &b| (n << 8) | usize::from(b));
    body.get(..len)
}

#[derive(Clone, Copy)]
enum Usage {
    Server,
    Client,
}

fn explain(error: webpki::Error, chain: &[CertificateDer<'_>], usage: Usage) -> ChainError {
    use webpki::Error as E;
    match error {
        E::UnknownIssuer => unknown_issuer(chain),
        E::CertExpired { .. } => ChainError::Expired,
        E::CertNotValidYet { .. } => ChainError::NotYetValid,
        E::InvalidSignatureForPublicKey => ChainError::BadSignature,
        E::RequiredEkuNotFoundContext(_) => ChainError::WrongUsage(match usage {
            Usage::Server => "server",
            Usage::Client => "client",
        }),
        E::CaUsedAsEndEntity => ChainError::CaAsLeaf,
        E::CertRevoked | E::CertDistrusted => ChainError::Distrusted,
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            ChainError::UnsupportedAlgorithm
        }
        E::BadDer | E::BadDerTime | E::TrailingData(_) | E::MalformedExtensions => {
            ChainError::Malformed(format!("{error:?}"))
        }
        other => ChainError::Other(format!("{other:?}")),
    }
}

fn unknown_issuer(chain: &[CertificateDer<'_>]) -> ChainError {
    let parsed: Vec<X509Certificate<'_>> = chain
        .iter()
        .filter_map(|c| X509Certificate::from_der(c).ok().map(|(_, c)| c))
        .collect();
    match parsed.as_slice() {
        [only] if x509::self_issued(only) => ChainError::SelfSigned {
            subject: x509::dn(only.subject()),
        },
        [.., top] if x509::self_issued(top) => ChainError::UnknownIssuer {
            issuer: x509::dn(top.subject()),
        },
        [.., top] => ChainError::UnknownIssuer {
            issuer: x509::dn(top.issuer()),
        },
        [] => ChainError::Malformed("unreadable".to_owned()),
    }
}

#[cfg(test)]
mod tests;
