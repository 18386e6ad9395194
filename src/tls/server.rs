//! Our TLS server side, for STARTTLS and implicit-TLS listeners.
//!
//! TLS 1.2 and 1.3 only, with the aws-lc-rs provider's suites, all of
//! them forward-secret AEAD; key exchange prefers the post-quantum hybrid
//! X25519MLKEM768. A client certificate is requested when `[tls] client_ca`
//! is set, never required: the handshake accepts any certificate the
//! client proves it holds, and the chain is judged afterwards against the
//! client CAs, so an untrusted certificate costs the client its connector,
//! not its connection.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use tokio_rustls::TlsAcceptor;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::certs::Identity;
use super::trust::TrustStore;
use super::x509;
use crate::config::values::TlsVersion;

/// What a client's TLS handshake established, for connector matching and
/// the Received header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    pub group: Option<String>,
    pub client_cert: ClientCert,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClientCert {
    #[default]
    None,
    /// Chains to `[tls] client_ca`; its DNS names (SANs, else CN).
    Verified { subject: String, names: Vec<String> },
    /// Presented but not trusted; never used for matching.
    Unverified { subject: String, reason: String },
}

/// The TLS side of the listeners: one configuration, swapped whole on reload.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    client_trust: Option<TrustStore>,
}

impl ServerTls {
    /// Builds the server configuration from our identity and the client CAs.
    pub fn new(
        identity: Identity,
        client_ca: &[CertificateDer<'static>],
        min_version: TlsVersion,
    ) -> Result<Self, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)?;
        let (builder, client_trust) = if client_ca.is_empty() {
            (builder.with_no_client_auth(), None)
        } else {
            let mut trust = TrustStore::empty();
            trust
                .add_certificates(client_ca)
                .map_err(rustls::Error::General)?;
            // The CertificateRequest's certificate_authorities are whole
            // DER Names (RFC 8446 §4.2.4, RFC 5246 §7.4.4); webpki keeps an
            // anchor's subject without its outer SEQUENCE. Sent bare, OpenSSL
            // clients abort the handshake ("wrong tag") and GnuTLS clients
            // find no certificate of theirs under any listed CA.
            let hints = trust
                .anchors()
                .iter()
                .map(|a| DistinguishedName::in_sequence(&a.subject))
                .collect();
            let verifier = AnyClientCert {
                hints,
                algorithms: provider.signature_verification_algorithms,
            };
            (
                builder.with_client_cert_verifier(Arc::new(verifier)),
                Some(trust),
            )
        };
        let mut config = builder.with_single_cert(identity.chain, identity.key)?;
        // Our order (strongest first), not the client's.
        config.ignore_client_order = true;
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            client_trust,
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// What the handshake established, with the client certificate judged.
    pub fn session_info(&self, connection: &rustls::ServerConnection) -> TlsInfo {
        let super::client::Negotiated {
            version,
            cipher,
            group,
        } = super::client::Negotiated::of(connection);
        let client_cert = match connection.peer_certificates() {
            Some(chain) if !chain.is_empty() => self.judge_client_chain(chain),
            _ => ClientCert::None,
        };
        TlsInfo {
            version,
            cipher,
            group,
            client_cert,
        }
    }

    fn judge_client_chain(&self, chain: &[CertificateDer<'static>]) -> ClientCert {
        let (subject, names) = names_of(&chain[0]);
        let Some(trust) = &self.client_trust else {
            return ClientCert::Unverified {
                subject,
                reason: "no client CA configured".into(),
            };
        };
        match trust.verify_client_chain(chain, UnixTime::now()) {
            Ok(_) => ClientCert::Verified { subject, names },
            Err(e) => ClientCert::Unverified {
                subject,
                reason: e.to_string(),
            },
        }
    }
}

/// Subject DN and DNS names (SANs, else the CN) of a certificate.
fn names_of(cert: &CertificateDer<'_>) -> (String, Vec<String>) {
    let Ok((_, parsed)) = X509Certificate::from_der(cert) else {
        return ("unreadable certificate".into(), Vec::new());
    };
    let subject = x509::dn(parsed.subject());
    let mut names = x509::alt_names(&parsed).dns;
    if names.is_empty() {
        names.extend(
            parsed
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_string),
        );
    }
    (subject, names)
}

/// Requests a client certificate and checks the client holds its key, but
/// accepts any chain: trust is decided after the handshake.
#[derive(Debug)]
struct AnyClientCert {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
