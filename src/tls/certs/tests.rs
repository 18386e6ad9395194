use std::path::PathBuf;

use super::*;

use crate::tls::test_ca as ca;

use ca::{Chain, Key, Spec, TestCa};
use time::Duration;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

fn load(files: &Files, cert: &str, key: &str) -> Result<Identity, CertError> {
    load_identity(&files.write("c.pem", cert), &files.write("k.pem", key))
}

#[test]
fn good_chain_and_key_load_without_warnings() {
    let chain = Chain::new(&Spec::new(&["mx.example.test"], Key::P256));
    let files = Files::new();
    let id = load(&files, &chain.served_pem(), &chain.leaf.key_pem).unwrap();
    assert_eq!(id.chain.len(), 2);
    assert_eq!(id.chain[0], chain.leaf.der);
    assert!(id.warnings.is_empty(), "{:?}", id.warnings);
}

#[test]
fn missing_file_names_the_path() {
    let files = Files::new();
    let key = files.write("k.pem", "");
    let missing = files.dir.path().join("nope.crt");
    let err = load_identity(&missing, &key).unwrap_err();
    assert!(matches!(err, CertError::Read { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("nope.crt") && text.contains("check the path"),
        "{text}"
    );
}

#[test]
fn swapped_cert_and_key_are_named() {
    let leaf = ca::self_signed(&Spec::new(&["a.test"], Key::P256));
    let files = Files::new();
    let err = load(&files, &leaf.key_pem, &leaf.cert_pem).unwrap_err();
    assert!(matches!(err, CertError::NoCertificate { .. }), "{err:?}");
    assert!(err.to_string().contains("swapped"), "{err}");

    let err = load(&files, &leaf.cert_pem, &leaf.cert_pem).unwrap_err();
    assert!(matches!(err, CertError::NoKey { .. }), "{err:?}");
    assert!(err.to_string().contains("swapped"), "{err}");
}

#[test]
fn file_without_pem_blocks() {
    let files = Files::new();
    let err = load(&files, "hello\n", "x").unwrap_err();
    assert!(
        matches!(err, CertError::NoCertificate { hint: "", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");

    let leaf = ca::self_signed(&Spec::new(&["a.test"], Key::P256));
    let err = load(&files, &leaf.cert_pem, "no key here\n").unwrap_err();
    assert!(matches!(err, CertError::NoKey { hint: "", .. }), "{err:?}");
}

#[test]
fn encrypted_key_says_to_decrypt() {
    let leaf = ca::self_signed(&Spec::new(&["a.test"], Key::P256));
    let files = Files::new();
    let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0w\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let err = load(&files, &leaf.cert_pem, encrypted).unwrap_err();
    assert!(err.to_string().contains("openssl pkey"), "{err}");
}

#[test]
fn key_of_another_certificate_is_refused() {
    let leaf = ca::self_signed(&Spec::new(&["a.test"], Key::P256));
    let other = ca::self_signed(&Spec::new(&["b.test"], Key::P256));
    let files = Files::new();
    let err = load(&files, &leaf.cert_pem, &other.key_pem).unwrap_err();
    assert!(matches!(err, CertError::KeyMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("CN=a.test"), "{err}");
}

#[test]
fn leaf_after_intermediate_says_put_leaf_first() {
    let chain = Chain::new(&Spec::new(&["mx.example.test"], Key::P256));
    let files = Files::new();
    let reversed = format!("{}{}", chain.intermediate.pem(), chain.leaf.cert_pem);
    let err = load(&files, &reversed, &chain.leaf.key_pem).unwrap_err();
    assert!(matches!(err, CertError::ChainOrder { .. }), "{err:?}");
    assert!(err.to_string().contains("put the leaf first"), "{err}");
}

#[test]
fn intermediates_out_of_order_are_sortable() {
    let chain = Chain::new(&Spec::new(&["mx.example.test"], Key::P256));
    let files = Files::new();
    let pem = format!(
        "{}{}{}",
        chain.leaf.cert_pem,
        chain.root.pem(),
        chain.intermediate.pem()
    );
    let err = load(&files, &pem, &chain.leaf.key_pem).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("out of order") && text.contains("put the leaf first, then intermediates"),
        "{text}"
    );
}

#[test]
fn unrelated_certificate_cannot_be_sorted() {
    let chain = Chain::new(&Spec::new(&["mx.example.test"], Key::P256));
    let stranger = TestCa::root("someone else", Key::P256);
    let files = Files::new();
    let pem = format!("{}{}", chain.leaf.cert_pem, stranger.pem());
    let err = load(&files, &pem, &chain.leaf.key_pem).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no order fixes it") && text.contains("someone else"),
        "{text}"
    );
}

#[test]
fn full_chain_with_root_is_fine() {
    let chain = Chain::new(&Spec::new(&["mx.example.test"], Key::Rsa2048));
    let files = Files::new();
    let id = load(&files, &chain.full_pem(), &chain.leaf.key_pem).unwrap();
    assert_eq!(id.chain.len(), 3);
}

#[test]
fn expiry_is_a_warning_not_an_error() {
    let files = Files::new();
    let cases = [
        (Duration::days(-30), Duration::days(-1), "expired on"),
        (Duration::days(1), Duration::days(30), "not valid before"),
        (Duration::days(-30), Duration::days(5), "renew it soon"),
    ];
    for (from, to, expect) in cases {
        let leaf = ca::self_signed(&Spec::new(&["a.test"], Key::P256).valid(from, to));
        let id = load(&files, &leaf.cert_pem, &leaf.key_pem).unwrap();
        assert_eq!(id.warnings.len(), 1, "{:?}", id.warnings);
        assert!(id.warnings[0].contains(expect), "{:?}", id.warnings);
    }
}

/// PKCS#1 (`BEGIN RSA PRIVATE KEY`) and SEC1 (`BEGIN EC PRIVATE KEY`) as older tools write them.
#[test]
fn traditional_key_formats_load() {
    for key in [Key::Rsa2048, Key::P384] {
        let leaf = ca::self_signed(&Spec::new(&["a.test"], key));
        let files = Files::new();
        let pkcs8 = files.write("pkcs8.pem", &leaf.key_pem);
        let out = std::process::Command::new("/usr/bin/openssl")
            .args(["pkey", "-traditional", "-in"])
            .arg(&pkcs8)
            .output()
            .unwrap();
        assert!(out.status.success());
        let traditional = String::from_utf8(out.stdout).unwrap();
        assert!(
            traditional.contains("BEGIN RSA PRIVATE KEY")
                || traditional.contains("BEGIN EC PRIVATE KEY")
        );
        load(&files, &leaf.cert_pem, &traditional).unwrap();
    }
}

#[test]
fn ca_file_needs_a_certificate() {
    let files = Files::new();
    let root = TestCa::root("r", Key::P256);
    assert_eq!(
        load_ca_file(&files.write("ca.pem", root.pem()))
            .unwrap()
            .len(),
        1
    );
    let err = load_ca_file(&files.write("empty.pem", "")).unwrap_err();
    assert!(matches!(err, CertError::NoCertificate { .. }), "{err:?}");
}
