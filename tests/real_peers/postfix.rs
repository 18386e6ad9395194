//! Postfix as a peer: the harness itself, Postfix as a STARTTLS server for
//! `cert-info --connect`, and Postfix relaying through tlsrelay.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::openssl_fingerprint;
use crate::support::postfix::{run_bounded, PostfixOptions, SmtpSink};
use crate::support::relay::Relay;
use crate::{split_first_field, swaks_send, Spooled};

const OPENSSL: &str = "/usr/bin/openssl";

/// A self-signed P-256 certificate made by openssl, as a peer's admin would.
struct TestCert {
    cert: PathBuf,
    key: PathBuf,
}

fn openssl_cert(dir: &Path, name: &str) -> TestCert {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let output = run_bounded(
        Command::new(OPENSSL)
            .args(["req", "-x509", "-newkey", "ec"])
            .args([
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
            ])
            .args(["-subj", &format!("/CN={name}")])
            .args(["-addext", &format!("subjectAltName=DNS:{name}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        Duration::from_secs(30),
    );
    assert!(output.status.success(), "openssl req: {output:?}");
    TestCert { cert, key }
}

/// The first PEM certificate in `text`.
fn first_pem_cert(text: &str) -> Option<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = text.find(BEGIN)?;
    let end = start + text[start..].find(END)? + END.len();
    Some(format!("{}\n", &text[start..end]))
}

#[test]
#[ignore = "real peer: run by .ci/run"]
fn postfix_starttls_fingerprint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cert = openssl_cert(tmp.path(), "mx.peer.test");
    let expected = openssl_fingerprint(&cert.cert);
    let postfix = PostfixOptions::new()
        .hostname("mx.peer.test")
        .starttls(&cert.cert, &cert.key)
        .start();
    let target = format!("127.0.0.1:{}", postfix.smtp_port());

    // openssl as the client: STARTTLS works and Postfix serves our certificate.
    let s_client = run_bounded(
        Command::new(OPENSSL)
            .args(["s_client", "-starttls", "smtp", "-connect", &target])
            .args(["-servername", "mx.peer.test"]),
        Duration::from_secs(30),
    );
    let s_client_out = String::from_utf8_lossy(&s_client.stdout);
    let served = first_pem_cert(&s_client_out).unwrap_or_else(|| {
        panic!(
            "no certificate after STARTTLS: {s_client:?}\nPostfix log:\n{}",
            postfix.log()
        )
    });
    let served_file = tmp.path().join("served.pem");
    std::fs::write(&served_file, served).expect("write served.pem");
    assert_eq!(openssl_fingerprint(&served_file), expected);
    postfix.wait_for_log("starttls=1", Duration::from_secs(10));

    // tlsrelay as the client: cert-info shows the same fingerprint.
    let cert_info = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
            .args(["cert-info", "--connect", &target, "--starttls"])
            .args(["--timeout", "10"]),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&cert_info.stdout);
    let stderr = String::from_utf8_lossy(&cert_info.stderr);
    assert!(
        cert_info.status.success() && stdout.contains(&expected),
        "cert-info --connect {target} --starttls should print SHA-256 {expected}\n\
         status: {}\nstdout:\n{stdout}\nstderr:\n{stderr}\nPostfix log:\n{}",
        cert_info.status,
        postfix.log()
    );
}

/// The harness itself: a failed start must explain itself (Postfix logs
/// nowhere visible by default), and the port must be free again afterwards.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn postfix_harness_reports_failed_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let panic = std::panic::catch_unwind(|| PostfixOptions::new().smtp_port(port).start())
        .expect_err("Postfix cannot listen on a port that is taken");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("Address already in use"),
        "the panic should quote Postfix's fatal error:\n{message}"
    );
}

/// The harness itself: Postfix relays through `relayhost` to an smtp-sink and
/// delivers its own domains to the maildir.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn postfix_harness_relays_to_sink_and_delivers_locally() {
    let sink = SmtpSink::start("sink.peer.test", &[]);
    let postfix = PostfixOptions::new()
        .relayhost(sink.addr())
        .maildir_domains(&["local.test"])
        .start();
    for to in ["far@remote.test", "near@local.test"] {
        let swaks = run_bounded(
            Command::new("swaks")
                .args(["--server", &postfix.smtp_addr().to_string()])
                .args(["--from", "sender@origin.test", "--to", to])
                .args(["--header", &format!("Subject: to {to}")])
                .args(["--timeout", "10", "--silent", "2"]),
            Duration::from_secs(30),
        );
        assert!(
            swaks.status.success(),
            "swaks to {to}: {swaks:?}\n{}",
            postfix.log()
        );
    }
    let relayed = sink.wait_for_messages(1, Duration::from_secs(20));
    assert!(
        relayed[0].contains("X-Rcpt-Args: <far@remote.test>"),
        "{relayed:?}"
    );
    postfix.wait_for_log("status=sent", Duration::from_secs(20));
    let log = postfix.wait_for_log("to=<near@local.test>", Duration::from_secs(20));
    let delivered = postfix.delivered();
    assert!(
        delivered.len() == 1 && delivered[0].contains("Subject: to near@local.test"),
        "maildir: {delivered:?}\nlog:\n{log}"
    );
}

/// Postfix as the sending MTA, its relayhost tlsrelay and TLS enforced
/// (`smtp_tls_security_level = encrypt`, with our certificate as its CA):
/// the message reaches the spool over TLS 1.3, Postfix's own Received
/// header on top of exactly what was injected into Postfix, and Postfix
/// logs a trusted TLS connection and the delivery as sent, with the queue
/// id tlsrelay gave.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn postfix_relays_through_tlsrelay_with_tls_enforced() {
    let relay = Relay::start("");
    let cert = relay.cert_path();
    let postfix = PostfixOptions::new()
        .hostname("mta.client.test")
        .relayhost(relay.smtp)
        .smtp_tls_security_level("encrypt")
        .main_cf("smtp_tls_CAfile", &cert.display().to_string())
        .start();
    let (sent, _) = swaks_send(
        postfix.smtp_addr(),
        "injector.test",
        "bob@example.test",
        "through Postfix",
        &[],
    );

    let log = postfix.wait_for_log("status=", Duration::from_secs(30));
    let port = relay.smtp.port();
    let delivery = log
        .lines()
        .find(|l| l.contains("to=<bob@example.test>") && l.contains("status="))
        .unwrap_or_default();
    assert!(
        delivery.contains(&format!("relay=127.0.0.1[127.0.0.1]:{port}"))
            && delivery.contains("status=sent (250 2.0.0 Ok: queued as "),
        "Postfix should log the delivery to tlsrelay as sent:\n{log}\nrelay log:\n{}",
        relay.log()
    );
    let spooled = Spooled::one(&relay);
    assert!(
        delivery.ends_with(&format!("queued as {})", spooled.id)),
        "Postfix should name the spooled message's id: {delivery}"
    );
    let established = format!(
        "Trusted TLS connection established to 127.0.0.1[127.0.0.1]:{port}: TLSv1.3 with cipher "
    );
    let cipher = log
        .lines()
        .find_map(|l| l.split_once(&established))
        .and_then(|(_, after)| after.split(' ').next())
        .unwrap_or_else(|| panic!("Postfix should log {established:?}:\n{log}"));

    spooled.assert_envelope(&["bob@example.test"], "mta.client.test");
    spooled.assert_tls13(cipher);
    let (theirs, rest) = split_first_field(&spooled.rest);
    assert!(
        theirs.starts_with("Received: from injector.test (")
            && theirs.contains("\tby mta.client.test (Postfix) with ESMTP id "),
        "Postfix's Received header should follow ours:\n{theirs}"
    );
    assert_eq!(String::from_utf8_lossy(rest), sent);
}
