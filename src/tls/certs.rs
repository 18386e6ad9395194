//! Loading our certificate chain and key from PEM files.
//!
//! A relay with a broken certificate fails every forced-TLS partner at once,
//! and the TLS alert the partner sees says nothing useful. So everything an
//! administrator commonly gets wrong is caught here, at load time, with a
//! message that names the file and says what to do: key and certificate
//! swapped, an encrypted key, a key from another certificate, a chain pasted
//! in the wrong order. Expiry is only a warning: refusing to start over an
//! expired certificate would also stop the plaintext and opportunistic mail.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Warn this many days before a certificate expires.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// A certificate chain (leaf first) with its private key, checked to belong together.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Things worth telling the administrator that do not stop use (expired, expiring soon).
    pub warnings: Vec<String>,
    /// The leaf may serve as a TLS client certificate (its extended key
    /// usage allows `clientAuth`), as `client_cert = true` needs.
    pub client_auth: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {}: {source}; check the path and that tlsrelay may read it", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no certificate found (expected a block starting -----BEGIN CERTIFICATE-----){hint}", path.display())]
    NoCertificate { path: PathBuf, hint: &'static str },
    #[error("{}: no private key found (expected -----BEGIN PRIVATE KEY-----, BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY){hint}", path.display())]
    NoKey { path: PathBuf, hint: &'static str },
    #[error("{}: the private key does not belong to the certificate {subject} in {}; use the key that was generated with this certificate's request", key.display(), cert.display())]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        subject: String,
    },
    #[error("{}: {message}", path.display())]
    ChainOrder { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// Reads a chain (leaf first) and a key (PKCS#8, PKCS#1 RSA or SEC1 EC) and checks that they match
/// and that the chain is in order.
pub fn load_identity(cert: &Path, key: &Path) -> Result<Identity, CertError> {
    let chain = read_certificates(cert)?;
    let key_der = read_key(key)?;
    let parsed = parse_all(cert, &chain)?;

    let key_spki = public_key_of(key, &key_der)?;
    let Some(owner) = parsed
        .iter()
        .position(|c| c.public_key().raw == key_spki.as_slice())
    else {
        return Err(CertError::KeyMismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
            subject: parsed[0].subject().to_string(),
        });
    };
    if owner != 0 {
        return Err(CertError::ChainOrder {
            path: cert.to_owned(),
            message: format!(
                "the key belongs to certificate #{} ({}), not the first one; put the leaf first, then intermediates",
                owner + 1,
                parsed[owner].subject()
            ),
        });
    }
    check_order(cert, &parsed)?;
    let warnings = validity_warnings(cert, &parsed, time::OffsetDateTime::now_utc());
    let client_auth =
        super::x509::allows_client_auth(super::x509::extended_key_usage(&parsed[0]).as_deref());
    Ok(Identity {
        chain,
        key: key_der,
        warnings,
        client_auth,
    })
}

/// Reads every certificate of a PEM file of trust anchors (at least one).
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    read_certificates(path)
}

/// Every `CERTIFICATE` block of a PEM file, in file order; other blocks are skipped.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        let hint = if PrivateKeyDer::from_pem_file(path).is_ok() {
            "; this file holds a private key: are the certificate and key paths swapped?"
        } else {
            ""
        };
        return Err(CertError::NoCertificate {
            path: path.to_owned(),
            hint,
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    match PrivateKeyDer::from_pem_file(path) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let text = std::fs::read(path).unwrap_or_default();
            let contains = |s: &[u8]| text.windows(s.len()).any(|w| w == s);
            let hint = if contains(b"ENCRYPTED PRIVATE KEY") || contains(b"Proc-Type: 4,ENCRYPTED")
            {
                "; the key is encrypted with a passphrase, which a daemon cannot type: decrypt it with `openssl pkey -in KEY -out KEY.plain`"
            } else if contains(b"BEGIN CERTIFICATE") {
                "; this file holds a certificate: are the certificate and key paths swapped?"
            } else {
                ""
            };
            Err(CertError::NoKey {
                path: path.to_owned(),
                hint,
            })
        }
        Err(e) => Err(pem_error(path, e)),
    }
}

fn pem_error(path: &Path, e: pem::Error) -> CertError {
    match e {
        pem::Error::Io(source) => CertError::Read {
            path: path.to_owned(),
            source,
        },
        other => CertError::Invalid {
            path: path.to_owned(),
            message: format!("not a valid PEM file ({other})"),
        },
    }
}

/// Parses each certificate, naming its position when one is damaged.
pub fn parse_all<'a>(
    path: &Path,
    chain: &'a [CertificateDer<'_>],
) -> Result<Vec<X509Certificate<'a>>, CertError> {
    chain
        .iter()
        .enumerate()
        .map(|(i, der)| match X509Certificate::from_der(der) {
            Ok((_, cert)) => Ok(cert),
            Err(e) => Err(CertError::Invalid {
                path: path.to_owned(),
                message: format!("certificate #{} is not valid X.509 ({e})", i + 1),
            }),
        })
        .collect()
}

/// The SubjectPublicKeyInfo DER of a private key, to compare with the leaf's.
fn public_key_of(path: &Path, key: &PrivateKeyDer<'_>) -> Result<Vec<u8>, CertError> {
    let unsupported = |why: String| CertError::Invalid {
        path: path.to_owned(),
        message: format!("unsupported private key ({why}); use RSA, ECDSA P-256/P-384 or Ed25519"),
    };
    let signing_key = rustls::crypto::aws_lc_rs::sign::any_supported_type(key)
        .map_err(|e| unsupported(e.to_string()))?;
    let spki = signing_key
        .public_key()
        .ok_or_else(|| unsupported("no public key".into()))?;
    Ok(spki.as_ref().to_vec())
}

/// Each certificate must be issued by the next one (RFC 8446 §4.4.2 asks for
/// this order, and some clients still insist on it).
fn check_order(path: &Path, chain: &[X509Certificate<'_>]) -> Result<(), CertError> {
    let Some(i) = (0..chain.len().saturating_sub(1))
        .find(|&i| chain[i].issuer().as_raw() != chain[i + 1].subject().as_raw())
    else {
        return Ok(());
    };
    let message = if sortable(chain) {
        format!(
            "certificates are out of order: #{} ({}) is not issued by #{} ({}); put the leaf first, then intermediates, each followed by its issuer",
            i + 1,
            chain[i].subject(),
            i + 2,
            chain[i + 1].subject()
        )
    } else {
        format!(
            "certificate #{} ({}) is not the issuer of #{} ({}), and no order fixes it: keep only the leaf and the intermediates that issued it",
            i + 2,
            chain[i + 1].subject(),
            i + 1,
            chain[i].subject()
        )
    };
    Err(CertError::ChainOrder {
        path: path.to_owned(),
        message,
    })
}

/// True when following issuer links from the leaf visits every certificate.
fn sortable(chain: &[X509Certificate<'_>]) -> bool {
    let mut used = vec![false; chain.len()];
    used[0] = true;
    let mut current = 0;
    for _ in 1..chain.len() {
        let issuer = chain[current].issuer().as_raw();
        match (0..chain.len()).find(|&j| !used[j] && chain[j].subject().as_raw() == issuer) {
            Some(j) => {
                used[j] = true;
                current = j;
            }
            None => return false,
        }
    }
    true
}

fn validity_warnings(
    path: &Path,
    chain: &[X509Certificate<'_>],
    now: time::OffsetDateTime,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for (i, cert) in chain.iter().enumerate() {
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        let which = format!(
            "{}: certificate #{} ({})",
            path.display(),
            i + 1,
            cert.subject()
        );
        if not_after < now {
            warnings.push(format!(
                "{which} expired on {}; peers that verify certificates will refuse it: renew it",
                super::x509::utc(not_after)
            ));
        } else if not_before > now {
            warnings.push(format!(
                "{which} is not valid before {}; check the clock, or wait",
                super::x509::utc(not_before)
            ));
        } else if (not_after - now).whole_days() < EXPIRY_WARNING_DAYS {
            warnings.push(format!(
                "{which} expires on {} (in {} days): renew it soon",
                super::x509::utc(not_after),
                (not_after - now).whole_days()
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests;
