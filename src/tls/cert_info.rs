//! `cert-info`: the certificate table a partner needs to set up forced TLS.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Report {}

impl Report {
    pub fn to_text(&self) -> String {
        todo!()
    }
    pub fn to_json(&self) -> String {
        todo!()
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
    #[error("{0}")]
    Todo(String),
}

impl CertInfoError {
    /// True when the fault is in what the user asked (bad file, bad HOST:PORT), not the network.
    pub fn is_user_error(&self) -> bool {
        todo!()
    }
}

pub fn from_file(path: &Path, ca_files: &[PathBuf]) -> Result<Report, CertInfoError> {
    let _ = (path, ca_files);
    todo!()
}

pub async fn from_server(request: &ConnectRequest) -> Result<Report, CertInfoError> {
    let _ = request;
    todo!()
}
