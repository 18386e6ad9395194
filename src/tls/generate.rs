//! Self-signed certificates for first runs and tests (`gen-cert`, `generate_if_missing`).

use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub hostnames: Vec<String>,
    pub key_type: KeyType,
    pub days: u32,
}

pub struct Written {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("{0}")]
    Todo(String),
}

/// Writes `DIR/NAME.crt` and `DIR/NAME.key` (mode 0600).
pub fn write_files(
    options: &Options,
    dir: &Path,
    name: &str,
    force: bool,
) -> Result<Written, GenError> {
    let _ = (options, dir, name, force);
    todo!()
}
