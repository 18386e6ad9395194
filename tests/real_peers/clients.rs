//! Submission clients as peers: swaks (plain and STARTTLS), msmtp and
//! Python's smtplib each deliver one message; the spool must hold exactly
//! the envelope and bytes they sent, under our Received header, which
//! names the TLS version and the cipher the client itself reports.

use std::process::Command;

use crate::support::arg;
use crate::support::relay::Relay;
use crate::{gnutls_tls13_cipher, message, run_peer, swaks_send, write_file, Spooled, SENDER};

const RECIPIENTS: [&str; 2] = ["bob@example.test", "carol@example.test"];
const SWAKS_HELO: &str = "client.swaks.test";

#[test]
#[ignore = "real peer: run by .ci/run"]
fn swaks_plaintext_delivers_into_the_spool() {
    let relay = Relay::start("");
    let to = RECIPIENTS.join(",");
    let (sent, _) = swaks_send(relay.smtp, SWAKS_HELO, &to, "swaks, plaintext", &[]);
    let spooled = Spooled::one(&relay);
    spooled.assert_envelope(&RECIPIENTS, SWAKS_HELO);
    spooled.assert_plaintext();
    spooled.assert_content(sent.as_bytes());
}

/// swaks with STARTTLS, verifying our generated certificate.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn swaks_starttls_delivers_into_the_spool() {
    let relay = Relay::start("");
    let cert = relay.cert_path();
    let tls = ["--tls", "--tls-verify", "--tls-ca-path", arg(&cert)];
    let (sent, transcript) = swaks_send(
        relay.smtp,
        SWAKS_HELO,
        "bob@example.test",
        "swaks, STARTTLS",
        &tls,
    );
    // "=== TLS started with cipher TLSv1.3:TLS_AES_256_GCM_SHA384:256"
    let cipher = transcript
        .split_once("TLS started with cipher TLSv1.3:")
        .and_then(|(_, after)| after.split(':').next())
        .unwrap_or_else(|| panic!("swaks should negotiate TLSv1.3:\n{transcript}"));
    let spooled = Spooled::one(&relay);
    spooled.assert_envelope(&["bob@example.test"], SWAKS_HELO);
    spooled.assert_tls13(cipher);
    assert!(
        spooled.received.contains("\tfor <bob@example.test>; "),
        "{}",
        spooled.received
    );
    spooled.assert_content(sent.as_bytes());
}

/// msmtp (GnuTLS) with `tls_starttls`, trusting our certificate for the
/// name it carries; the message comes from a file on stdin.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn msmtp_starttls_delivers_into_the_spool() {
    let relay = Relay::start("");
    let tmp = tempfile::tempdir().expect("tempdir");
    let sent = message("msmtp, STARTTLS");
    let data = write_file(tmp.path(), "message.eml", sent.as_bytes());
    let config = format!(
        "account relay\nhost 127.0.0.1\nport {}\ndomain client.msmtp.test\nauth off\n\
         tls on\ntls_starttls on\ntls_certcheck on\ntls_trust_file {}\n\
         tls_host_override relay.example.test\ntimeout 10\n",
        relay.smtp.port(),
        relay.cert_path().display()
    );
    let config = write_file(tmp.path(), "msmtprc", config.as_bytes());
    // run_bounded gives the child no stdin; the shell opens the file for it.
    let transcript = run_peer(
        Command::new("sh")
            .args(["-c", r#"exec msmtp "$@" <"$0""#, arg(&data)])
            .args(["--file", arg(&config), "--account", "relay", "--debug"])
            .args(["-f", SENDER])
            .args(RECIPIENTS),
    );
    // "TLS session parameters:\n    (TLS1.3)-(ECDHE-X25519)-(ECDSA-SECP256R1-SHA256)-(AES-256-GCM)"
    let cipher = transcript
        .lines()
        .find_map(|l| l.trim().strip_prefix("(TLS1.3)-"))
        .and_then(|params| params.rsplit("-(").next())
        .map(|c| gnutls_tls13_cipher(c.trim_end_matches(')')))
        .unwrap_or_else(|| panic!("msmtp should report TLS1.3 session parameters:\n{transcript}"));
    let spooled = Spooled::one(&relay);
    spooled.assert_envelope(&RECIPIENTS, "client.msmtp.test");
    spooled.assert_tls13(&cipher);
    spooled.assert_content(sent.as_bytes());
}

/// Python's smtplib: `starttls()` verifying our certificate's chain (the
/// name is not checked: we connect to an IP address), then `sendmail` with
/// the exact bytes. Prints `VERSION CIPHER` as OpenSSL negotiated them.
const SMTPLIB: &str = r#"
import smtplib, ssl, sys
host, port, cafile, sender, message = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
recipients = sys.argv[6:]
context = ssl.create_default_context(cafile=cafile)
context.check_hostname = False
with smtplib.SMTP(host, port, local_hostname="client.python.test", timeout=10) as smtp:
    smtp.starttls(context=context)
    print(smtp.sock.version(), smtp.sock.cipher()[0])
    with open(message, "rb") as f:
        refused = smtp.sendmail(sender, recipients, f.read())
    if refused:
        sys.exit(f"refused: {refused}")
"#;

#[test]
#[ignore = "real peer: run by .ci/run"]
fn python_smtplib_starttls_delivers_into_the_spool() {
    let relay = Relay::start("");
    let tmp = tempfile::tempdir().expect("tempdir");
    let sent = message("Python smtplib, STARTTLS");
    let data = write_file(tmp.path(), "message.eml", sent.as_bytes());
    let cert = relay.cert_path();
    let transcript = run_peer(
        Command::new("python3")
            .args(["-c", SMTPLIB, "127.0.0.1", &relay.smtp.port().to_string()])
            .args([arg(&cert), SENDER, arg(&data)])
            .args(RECIPIENTS),
    );
    let cipher = transcript
        .lines()
        .find_map(|l| l.strip_prefix("TLSv1.3 "))
        .unwrap_or_else(|| panic!("smtplib should negotiate TLSv1.3:\n{transcript}"));
    let spooled = Spooled::one(&relay);
    spooled.assert_envelope(&RECIPIENTS, "client.python.test");
    spooled.assert_tls13(cipher);
    spooled.assert_content(sent.as_bytes());
}
