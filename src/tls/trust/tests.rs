use super::*;

use crate::tls::test_ca as ca;

use ca::{Chain, Key, Spec};

fn store_with(root: &ca::TestCa) -> TrustStore {
    let mut store = TrustStore::empty();
    store
        .add_certificates(std::slice::from_ref(&root.issued.der))
        .unwrap();
    store
}

fn served(chain: &Chain) -> Vec<CertificateDer<'static>> {
    vec![
        chain.leaf.der.clone(),
        chain.intermediate.issued.der.clone(),
    ]
}

#[test]
fn chain_to_a_configured_root_verifies_and_names_the_anchor() {
    let chain = Chain::new(&Spec::new(&["mx.example.test"], Key::P256));
    let verified = store_with(&chain.root)
        .verify_server_chain(&served(&chain), UnixTime::now())
        .unwrap();
    assert_eq!(verified.anchor, "CN=tlsrelay test root, O=tlsrelay tests");
}

#[test]
fn unknown_root_is_issuer_not_trusted() {
    let chain = Chain::new(&Spec::new(&["mx.example.test"], Key::P256));
    let err = TrustStore::webpki_roots()
        .verify_server_chain(&served(&chain), UnixTime::now())
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("issuer not trusted: CN=tlsrelay test root"),
        "{err}"
    );
}

#[test]
fn missing_intermediate_names_the_intermediate() {
    let chain = Chain::new(&Spec::new(&["mx.example.test"], Key::P256));
    let err = store_with(&chain.root)
        .verify_server_chain(std::slice::from_ref(&chain.leaf.der), UnixTime::now())
        .unwrap_err();
    assert_eq!(
        err,
        ChainError::UnknownIssuer {
            issuer: "CN=tlsrelay test intermediate, O=tlsrelay tests".into()
        }
    );
}

#[test]
fn self_signed_leaf_is_called_self_signed() {
    let leaf = ca::self_signed(&Spec::new(&["a.test"], Key::Ed25519));
    let err = TrustStore::webpki_roots()
        .verify_server_chain(&[leaf.der], UnixTime::now())
        .unwrap_err();
    assert!(matches!(err, ChainError::SelfSigned { .. }), "{err:?}");
    assert!(err.to_string().starts_with("self-signed"), "{err}");
}

#[test]
fn expired_leaf_is_called_expired() {
    let spec = Spec::new(&["a.test"], Key::P256)
        .valid(time::Duration::days(-10), time::Duration::days(-1));
    let chain = Chain::new(&spec);
    let err = store_with(&chain.root)
        .verify_server_chain(&served(&chain), UnixTime::now())
        .unwrap_err();
    assert_eq!(err, ChainError::Expired);
    assert_eq!(err.to_string(), "expired");
}

#[test]
fn empty_chain() {
    let err = TrustStore::empty().verify_server_chain(&[], UnixTime::now());
    assert_eq!(err, Err(ChainError::Empty));
}

#[test]
fn names_follow_rfc_6125() {
    let chain = Chain::new(&Spec::new(
        &["*.example.test", "mx.other.test", "192.0.2.7"],
        Key::P256,
    ));
    let leaf = &chain.leaf.der;
    assert_eq!(check_name(leaf, "mx1.example.test"), Ok(()));
    assert_eq!(check_name(leaf, "MX.OTHER.TEST"), Ok(()));
    assert_eq!(check_name(leaf, "192.0.2.7"), Ok(()));
    // A wildcard covers one label only.
    let err = check_name(leaf, "a.b.example.test").unwrap_err();
    assert_eq!(
        err.to_string(),
        "certificate is not valid for a.b.example.test (it names: *.example.test, mx.other.test, 192.0.2.7)"
    );
    assert!(matches!(
        check_name(leaf, "example.test"),
        Err(NameError::Mismatch { .. })
    ));
    assert!(matches!(
        check_name(leaf, "bad name"),
        Err(NameError::InvalidName { .. })
    ));
}

#[test]
fn anchor_named_finds_a_webpki_root() {
    let store = TrustStore::webpki_roots();
    // Every anchor can be found back by its own name.
    let anchor = &store.anchors()[0];
    let mut name = vec![0x30, 0x81, anchor.subject.len() as u8];
    name.extend_from_slice(anchor.subject.as_ref());
    if anchor.subject.len() < 0x80 {
        name.remove(1);
    }
    let found = store.anchor_named(&name).unwrap();
    assert!(found.contains("CN="), "{found}");
}
