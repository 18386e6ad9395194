//! `tlsrelay cert-info FILE` and `gen-cert`, checked against openssl.

mod support;

use std::path::Path;

use support::ca::{Chain, Key, Spec, TestCa};
use support::{
    arg, openssl, openssl_fingerprint, openssl_spki_pin, stderr, stdout, tlsrelay, write,
};

fn json(args: &[&str]) -> serde_json::Value {
    let out = tlsrelay(args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("cert-info --json is JSON")
}

/// `CN = a, O = b` (openssl) and `CN=a, O=b` (us) are the same name.
fn squeeze(dn: &str) -> String {
    dn.replace(" = ", "=")
}

/// Everything openssl says about `pem` that we also print, compared field by field.
fn assert_matches_openssl(pem: &Path) -> serde_json::Value {
    let report = json(&["cert-info", arg(pem), "--json"]);
    let cert = &report["certificates"][0];
    let text = openssl(&["x509", "-noout", "-text", "-in", arg(pem)]);

    assert_eq!(cert["sha256_fingerprint"], openssl_fingerprint(pem));
    // Both pins in the form `fingerprints` takes.
    assert_eq!(
        cert["certificate_pin"],
        format!(
            "sha256:{}",
            openssl_fingerprint(pem).replace(':', "").to_lowercase()
        )
    );
    assert_eq!(cert["spki_sha256"], openssl_spki_pin(pem));
    // The DANE-EE record: `openssl x509 -pubkey | openssl pkey -pubin
    // -outform DER | openssl dgst -sha256`, after `3 1 1`.
    let spki_hex = openssl_spki_pin(pem).replace("sha256:", "");
    assert_eq!(cert["tlsa_3_1_1"], format!("3 1 1 {spki_hex}"));
    let subject = openssl(&["x509", "-noout", "-subject", "-in", arg(pem)]);
    assert_eq!(
        squeeze(subject.trim().trim_start_matches("subject=")),
        cert["subject"]
    );
    let issuer = openssl(&["x509", "-noout", "-issuer", "-in", arg(pem)]);
    assert_eq!(
        squeeze(issuer.trim().trim_start_matches("issuer=")),
        cert["issuer"]
    );
    let serial = openssl(&["x509", "-noout", "-serial", "-in", arg(pem)]);
    let ours = cert["serial"]
        .as_str()
        .unwrap()
        .replace(':', "")
        .to_uppercase();
    assert_eq!(serial.trim().trim_start_matches("serial="), ours);
    let sig = cert["signature_algorithm"].as_str().unwrap();
    assert!(
        text.contains(&format!("Signature Algorithm: {sig}")),
        "{sig} not in\n{text}"
    );

    match cert["key_type"].as_str().unwrap() {
        "Ed25519" => assert!(text.contains("Public Key Algorithm: ED25519"), "{text}"),
        _ => {
            let bits = cert["key_bits"].as_u64().unwrap();
            assert!(
                text.contains(&format!("Public-Key: ({bits} bit)")),
                "{bits} bits, openssl:\n{text}"
            );
        }
    }
    if let Some(curve) = cert["key_curve"].as_str() {
        assert!(
            text.contains(&format!("NIST CURVE: {curve}")),
            "{curve} not in\n{text}"
        );
    }
    report
}

#[test]
fn every_key_type_matches_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let root = TestCa::root("test root", Key::P384);
    let cases = [
        (Key::Rsa2048, "RSA 2048 bits"),
        (Key::Rsa4096, "RSA 4096 bits"),
        (Key::P256, "EC P-256 (256 bits)"),
        (Key::P384, "EC P-384 (384 bits)"),
        (Key::Ed25519, "Ed25519 (256 bits)"),
    ];
    for (key, strength) in cases {
        let spec = Spec::new(&["mx.example.test", "mail.example.test", "192.0.2.25"], key)
            .org("Example Ltd", "Mail Team");
        let pem = write(dir.path(), "leaf.pem", &root.leaf(&spec).cert_pem);
        let report = assert_matches_openssl(&pem);
        assert_eq!(report["certificates"][0]["key_strength"], strength);
        assert_eq!(report["partner"]["key_strength"], strength);
        assert_eq!(report["partner"]["organization"], "Example Ltd");
        assert_eq!(report["partner"]["organizational_unit"], "Mail Team");
        assert_eq!(
            report["partner"]["certificate_name"],
            "mx.example.test, mail.example.test, 192.0.2.25"
        );
        assert_eq!(
            report["certificates"][0]["alt_names"]["ip"][0],
            "192.0.2.25"
        );

        let text = stdout(&tlsrelay(&["cert-info", arg(&pem)]));
        assert!(
            text.contains(&format!("Key strength                         {strength}")),
            "{text}"
        );
        assert!(
            text.contains("Organization (O)       Example Ltd"),
            "{text}"
        );
        // The TLSA record for the relay's own MX, ready for a zone file.
        let spki_hex = openssl_spki_pin(&pem).replace("sha256:", "");
        let record = format!("  _25._tcp.mx.example.test. IN TLSA 3 1 1 {spki_hex}\n");
        assert!(text.contains(&record), "{record} not in\n{text}");
    }
}

#[test]
fn chain_root_issuer_and_verification() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(&Spec::new(&["mx.example.test"], Key::Rsa2048));
    let served = write(dir.path(), "served.pem", &chain.served_pem());
    let full = write(dir.path(), "full.pem", &chain.full_pem());
    let root = write(dir.path(), "root.pem", chain.root.pem());
    let root_subject = "CN=tlsrelay test root, O=tlsrelay tests";

    let trusted = json(&["cert-info", arg(&served), "--ca-file", arg(&root), "--json"]);
    assert_eq!(trusted["chain"]["verified"], true);
    assert_eq!(trusted["chain"]["root_issuer"], root_subject);
    assert_eq!(trusted["chain"]["trust_anchor"], root_subject);
    assert_eq!(trusted["partner"]["root_issuer"], root_subject);
    assert_eq!(trusted["certificates"].as_array().unwrap().len(), 2);
    let text = stdout(&tlsrelay(&[
        "cert-info",
        arg(&served),
        "--ca-file",
        arg(&root),
    ]));
    assert!(
        text.contains(&format!(
            "Verified               yes (trust anchor {root_subject})"
        )),
        "{text}"
    );
    assert!(text.contains("Certificate 2 (intermediate)"), "{text}");

    // Without the CA file the root is unknown; with the root in the file it is named.
    let untrusted = json(&["cert-info", arg(&served), "--json"]);
    assert_eq!(untrusted["chain"]["verified"], false);
    assert_eq!(
        untrusted["chain"]["root_issuer"],
        "unknown (not in the chain or trust store)"
    );
    let text = stdout(&tlsrelay(&["cert-info", arg(&full)]));
    assert!(
        text.contains("Verified               no: issuer not trusted: CN=tlsrelay test root"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Root issuer            {root_subject}")),
        "{text}"
    );
    assert!(text.contains("Certificate 3 (root)"), "{text}");
    assert_matches_openssl(&full);
}

#[test]
fn missing_file_is_a_user_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let out = tlsrelay(&["cert-info", arg(&missing)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nope.pem"), "{}", stderr(&out));
    let key_only = write(
        dir.path(),
        "key.pem",
        &support::ca::self_signed(&Spec::new(&["a.test"], Key::P256)).key_pem,
    );
    let out = tlsrelay(&["cert-info", arg(&key_only)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no certificate found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn gen_cert_round_trip_and_overwrite_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("new/certs");
    let gen = |extra: &[&str]| {
        let mut args = vec![
            "gen-cert",
            "--hostname",
            "relay.example.test",
            "--hostname",
            "192.0.2.9",
            "--out",
            arg(&out_dir),
        ];
        args.extend_from_slice(extra);
        tlsrelay(&args)
    };
    let out = gen(&["--key-type", "ecdsa-p384", "--days", "90"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cert = out_dir.join("relay.crt");
    let key = out_dir.join("relay.key");
    assert!(stdout(&out).contains(arg(&cert)));

    let report = assert_matches_openssl(&cert);
    let leaf = &report["certificates"][0];
    assert_eq!(leaf["common_name"], "relay.example.test");
    assert_eq!(leaf["alt_names"]["dns"][0], "relay.example.test");
    assert_eq!(leaf["alt_names"]["ip"][0], "192.0.2.9");
    assert_eq!(leaf["key_curve"], "P-384");
    assert!(
        matches!(leaf["days_left"].as_i64(), Some(89 | 90)),
        "{leaf}"
    );
    assert_eq!(report["chain"]["root_issuer"], "CN=relay.example.test");
    assert!(report["chain"]["problem"]
        .as_str()
        .unwrap()
        .starts_with("self-signed"));
    // The key on disk belongs to the certificate (openssl agrees) and only we can read it.
    let key_pub = openssl(&["pkey", "-in", arg(&key), "-pubout"]);
    let cert_pub = openssl(&["x509", "-noout", "-pubkey", "-in", arg(&cert)]);
    assert_eq!(key_pub, cert_pub);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let before = std::fs::read(&cert).unwrap();
    let refused = gen(&[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("already exists; pass --force"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        before,
        "refused run changed the file"
    );

    let forced = gen(&["--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(std::fs::read(&cert).unwrap(), before);
}

/// The extended key usage, as openssl reads it; a certificate without
/// clientAuth is flagged, since receivers refuse it as a client's (issue 12).
#[test]
fn extended_key_usage_is_shown_and_a_missing_client_auth_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let root = TestCa::root("test root", Key::P256);
    for (spec, json_usages, text_usages, client) in [
        (
            Spec::new(&["both.example.test"], Key::P256),
            vec!["serverAuth", "clientAuth"],
            "serverAuth, clientAuth\n",
            "TLS Web Server Authentication, TLS Web Client Authentication",
        ),
        (
            Spec::new(&["server.example.test"], Key::P256).server_auth_only(),
            vec!["serverAuth"],
            "serverAuth (no clientAuth: receivers refuse it as a client certificate)\n",
            "TLS Web Server Authentication\n",
        ),
    ] {
        let pem = write(dir.path(), "leaf.pem", &root.leaf(&spec).cert_pem);
        let openssl_text = openssl(&["x509", "-noout", "-text", "-in", arg(&pem)]);
        assert!(
            openssl_text.contains(&format!(
                "X509v3 Extended Key Usage: \n                {client}"
            )),
            "{openssl_text}"
        );
        let report = json(&["cert-info", arg(&pem), "--json"]);
        assert_eq!(
            report["certificates"][0]["extended_key_usage"],
            serde_json::json!(json_usages)
        );
        let out = tlsrelay(&["cert-info", arg(&pem)]);
        let text = stdout(&out);
        assert!(
            text.contains(&format!("  Extended key usage     {text_usages}")),
            "{text}"
        );
    }
    // The CA certificates carry no such extension: any purpose.
    let ca = write(dir.path(), "ca.pem", root.pem());
    let report = json(&["cert-info", arg(&ca), "--json"]);
    assert_eq!(
        report["certificates"][0]["extended_key_usage"],
        serde_json::Value::Null
    );
}

/// `check-config` warns (exit 0) for every connector that presents `[tls]
/// cert` as a client certificate when it lacks clientAuth, at the
/// connector's `client_cert` line; a certificate with clientAuth is quiet.
#[test]
fn check_config_warns_when_the_client_certificate_lacks_client_auth() {
    let dir = tempfile::tempdir().unwrap();
    let root = TestCa::root("test root", Key::P256);
    let config = "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:2525\"]\n\
                  spool_dir = \"spool\"\n[tls]\ncert = \"relay.crt\"\nkey = \"relay.key\"\n\
                  [relay]\naccepted_domains = [\"example.test\"]\n\
                  [[outbound]]\nname = \"internal\"\nrecipient_domains = [\"example.test\"]\n\
                  smarthosts = [\"192.0.2.1:25\"]\n\
                  [[outbound]]\nname = \"partner\"\nrecipient_domains = [\"partner.test\"]\n\
                  tls = \"verify-domain\"\nclient_cert = true\n";
    let file = write(dir.path(), "tlsrelay.toml", config);
    for (spec, warned) in [
        (
            Spec::new(&["relay.example.test"], Key::P256).server_auth_only(),
            true,
        ),
        (Spec::new(&["relay.example.test"], Key::P256), false),
    ] {
        let leaf = root.leaf(&spec);
        write(dir.path(), "relay.crt", &leaf.cert_pem);
        write(dir.path(), "relay.key", &leaf.key_pem);
        let out = tlsrelay(&["check-config", "-c", arg(&file)]);
        assert!(out.status.success(), "{}", stderr(&out));
        let expected = format!(
            "{}:18:15: outbound[1].client_cert: warning: {}/relay.crt has an extended key usage without clientAuth;",
            file.display(),
            dir.path().display()
        );
        assert_eq!(
            stderr(&out).starts_with(&expected),
            warned,
            "{}",
            stderr(&out)
        );
    }
}
