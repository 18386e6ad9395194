//! Loading our certificate chain and key from PEM files.

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain (leaf first) with its private key, checked to belong together.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Things worth telling the administrator that do not stop use (expired, expiring soon).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// Reads a chain (leaf first) and a key (PKCS#8, PKCS#1 RSA or SEC1 EC) and checks that they match
/// and that the chain is in order.
pub fn load_identity(cert: &Path, key: &Path) -> Result<Identity, CertError> {
    let _ = (cert, key);
    todo!()
}

/// Reads every certificate of a PEM file of trust anchors (at least one).
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let _ = path;
    todo!()
}
