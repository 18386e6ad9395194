//! Our TLS client side: for deliveries and for `cert-info --connect`.
//!
//! The handshake accepts any chain the server proves it holds the key for
//! ([`AcceptAnyChain`]): what the chain is worth is decided afterwards by
//! the connector's TLS level (`crate::outbound::policy`), so an untrusted
//! certificate can still carry opportunistic mail and be reported exactly.
//! Under DANE the TLSA records judge the chain inside the handshake
//! ([`ServerVerifier::dane`]).

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme, SupportedProtocolVersion};

use super::certs::Identity;
use super::dane::{authenticate, Authenticated, DaneError, Tlsa};

/// The handshake's check of the server's certificate. Without DANE
/// ([`AcceptAnyChain::new`]) it accepts any chain; with DANE
/// ([`ServerVerifier::dane`], RFC 7672 §3) the chain must be authenticated
/// by one of the host's usable TLSA records ([`authenticate`]: DANE-EE with
/// no name, chain or expiry check; DANE-TA with the chain built from the
/// matching certificate and the leaf naming one of `names`), else the
/// handshake fails before a byte of SMTP goes over it. Either way the
/// handshake signatures are checked with the leaf's key.
#[derive(Debug)]
pub struct ServerVerifier {
    provider: Arc<CryptoProvider>,
    dane: Option<DaneCheck>,
}

/// The verifier that accepts any chain.
pub type AcceptAnyChain = ServerVerifier;

#[derive(Debug)]
struct DaneCheck {
    records: Vec<Tlsa>,
    /// The reference identifiers for DANE-TA: the MX host, then the
    /// next-hop domain (RFC 7672 §3.2.2).
    names: Vec<String>,
    /// What the server presented, for the log and `probe`.
    presented: Mutex<Option<Presented>>,
}

/// What the server presented to a DANE verifier, and what its TLSA
/// records made of it.
#[derive(Clone, Debug)]
pub struct Presented {
    /// Leaf first, as sent.
    pub chain: Vec<CertificateDer<'static>>,
    pub result: Result<Authenticated, DaneError>,
}

impl ServerVerifier {
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        ServerVerifier {
            provider,
            dane: None,
        }
    }

    /// Authenticates the server by `records` during the handshake.
    pub fn dane(records: Vec<Tlsa>, names: Vec<String>) -> Self {
        ServerVerifier {
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            dane: Some(DaneCheck {
                records,
                names,
                presented: Mutex::new(None),
            }),
        }
    }

    /// Under DANE, the chain and verdict of the last handshake, if it got
    /// that far.
    pub fn presented(&self) -> Option<Presented> {
        let dane = self.dane.as_ref()?;
        match dane.presented.lock() {
            Ok(seen) => seen.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(dane) = &self.dane else {
            return Ok(ServerCertVerified::assertion());
        };
        let chain: Vec<CertificateDer<'static>> = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        let names: Vec<&str> = dane.names.iter().map(String::as_str).collect();
        let result = authenticate(&dane.records, &chain, &names, now);
        let verdict = match &result {
            Ok(_) => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(rustls::Error::General(format!("DANE: {e}"))),
        };
        let presented = Presented { chain, result };
        match dane.presented.lock() {
            Ok(mut seen) => *seen = Some(presented),
            Err(poisoned) => *poisoned.into_inner() = Some(presented),
        }
        verdict
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration for `versions`, verifying nothing during the
/// handshake, presenting `identity` when given.
pub fn config(
    versions: &[&'static SupportedProtocolVersion],
    identity: Option<&Identity>,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    config_verifying(versions, identity, Arc::new(AcceptAnyChain::new(provider)))
}

/// As [`config`], the server's certificate checked by `verifier` during
/// the handshake ([`ServerVerifier::dane`]).
pub fn config_verifying(
    versions: &[&'static SupportedProtocolVersion],
    identity: Option<&Identity>,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
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
