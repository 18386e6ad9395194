//! Our TLS client side: for deliveries and for `cert-info --connect`.
//!
//! The handshake accepts any chain the server proves it holds the key for
//! ([`AcceptAnyChain`]): what the chain is worth is decided afterwards by
//! the connector's TLS level (`crate::outbound::policy`), so an untrusted
//! certificate can still carry opportunistic mail and be reported exactly.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme, SupportedProtocolVersion};

use super::certs::Identity;

/// Accepts any certificate chain; still checks handshake signatures.
#[derive(Debug)]
pub struct AcceptAnyChain(Arc<CryptoProvider>);

impl AcceptAnyChain {
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        AcceptAnyChain(provider)
    }
}

impl ServerCertVerifier for AcceptAnyChain {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client configuration for `versions`, verifying nothing during the
/// handshake, presenting `identity` when given.
pub fn config(
    versions: &[&'static SupportedProtocolVersion],
    identity: Option<&Identity>,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyChain::new(provider)));
    let config = match identity {
        Some(identity) => {
            builder.with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// What a handshake agreed, in the words logs and headers use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The IANA name, as Postfix and OpenSSL print it
    /// (`TLS_AES_256_GCM_SHA384`); see [`iana_cipher`].
    pub cipher: String,
    /// The key-exchange group (`X25519MLKEM768`, `X25519`, `secp256r1`).
    pub group: Option<String>,
}

impl Negotiated {
    pub fn of(connection: &rustls::CommonState) -> Self {
        let version = match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(other) => format!("{other:?}"),
            None => "unknown".to_string(),
        };
        let cipher = connection
            .negotiated_cipher_suite()
            .map_or("unknown".to_string(), |s| iana_cipher(s.suite()));
        let group = connection
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name()));
        Negotiated {
            version,
            cipher,
            group,
        }
    }
}

/// The IANA name of a cipher suite (RFC 8446 §B.4 for TLS 1.3), the one
/// administrators know from Postfix logs and `openssl s_client`. rustls
/// prefixes its TLS 1.3 suites `TLS13_` to tell them apart in Rust; its
/// TLS 1.2 names are IANA's already. Envelopes spooled by releases before
/// this one carry the `TLS13_` spelling: they are only ever shown, never
/// parsed, so both read fine.
pub fn iana_cipher(suite: rustls::CipherSuite) -> String {
    let name = format!("{suite:?}");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CipherSuite;

    #[test]
    fn cipher_names_are_iana_names() {
        for (suite, name) in [
            (
                CipherSuite::TLS13_AES_256_GCM_SHA384,
                "TLS_AES_256_GCM_SHA384",
            ),
            (
                CipherSuite::TLS13_AES_128_GCM_SHA256,
                "TLS_AES_128_GCM_SHA256",
            ),
            (
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                "TLS_CHACHA20_POLY1305_SHA256",
            ),
            (
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            ),
        ] {
            assert_eq!(iana_cipher(suite), name);
        }
    }
}
