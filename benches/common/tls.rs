//! TLS for benchmarks only: the sink presents a throw-away self-signed
//! certificate, and the generator accepts any certificate (the handshake
//! signature is still checked), since what is measured is the cost of TLS,
//! not who holds which name.

use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, ServerConfig};
use tlsrelay::tls::client::AcceptAnyChain;

/// A client configuration for STARTTLS to any benchmark target (TLS 1.2 and 1.3).
pub fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("TLS versions: {e}"))
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyChain::new(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

/// A server configuration with a fresh self-signed certificate for `name`.
pub fn server_config(name: &str) -> Arc<ServerConfig> {
    let issued = rcgen::generate_simple_self_signed(vec![name.to_string()])
        .unwrap_or_else(|e| panic!("self-signed certificate: {e}"));
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("TLS versions: {e}"))
        .with_no_client_auth()
        .with_single_cert(vec![issued.cert.der().clone()], key)
        .unwrap_or_else(|e| panic!("sink certificate: {e}"));
    Arc::new(config)
}
