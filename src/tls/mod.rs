//! TLS pieces shared by both directions: certificate and key loading,
//! trust anchors and chain verification, certificate inspection for
//! `cert-info`, and self-signed generation for `gen-cert`.
//!
//! Map: [`certs`] (our chain and key), [`trust`] (anchors, chain and name
//! checks), [`cert_info`] (`cert-info`), [`generate`] (`gen-cert`),
//! [`dane`] (TLSA records and matching), [`digest`] (fingerprints and pins), [`x509`] (field wording),
//! [`reason`] (TLS errors in words for logs and notices).
//!
//! rustls uses the aws-lc-rs provider throughout; PEM goes through
//! `rustls::pki_types::pem::PemObject`.

pub mod cert_info;
pub mod certs;
pub mod client;
pub mod dane;
pub mod digest;
pub mod generate;
pub mod reason;
pub mod server;
pub mod trust;
pub mod verify;
pub mod x509;

/// The rcgen test CA shared with the integration tests (one file, two users).
#[cfg(test)]
#[path = "../../tests/support/ca.rs"]
pub(crate) mod test_ca;
