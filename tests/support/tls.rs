//! TLS client configurations for tests: the relay's certificate is
//! self-signed, so the test client accepts any server certificate (the
//! handshake signature is still checked, by cert-info's verifier), and
//! may present a client certificate from a [`TestCa`](super::ca::TestCa).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::ClientConfig;
use tlsrelay::tls::client::AcceptAnyChain;

use super::ca::Issued;

/// A client that accepts the relay's certificate and presents `identity`
/// as its client certificate, if given.
pub fn client_config(identity: Option<&Issued>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyChain::new(provider)));
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(issued) => {
            let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("test key");
            builder
                .with_client_auth_cert(vec![issued.der.clone()], key)
                .expect("client certificate")
        }
    };
    Arc::new(config)
}
