//! Certificate-keyed inbound connectors with real senders (issue 12, item 1).
//!
//! The relay asks for a client certificate whenever `[tls] client_ca` is
//! set, and lists the CAs' names in its CertificateRequest. OpenSSL clients
//! (Postfix, Python `ssl`, `openssl s_client`) parse that list strictly and
//! abort the handshake on a malformed one; GnuTLS clients (msmtp) use it to
//! pick the certificate they send. So each of them, with a certificate
//! issued under the partner CA, must complete STARTTLS, land in the
//! `partner` connector (`tls_client_cert_names`) and be allowed to relay;
//! and each of them without a certificate must still complete STARTTLS and
//! land anonymous (relay denied, accepted domains still open).
//!
//! The partner's certificate is issued by an intermediate and sent with it;
//! only the root is in `client_ca`, as a partner's CA would be configured.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::arg;
use crate::support::ca::{Chain, Key, Spec, TestCa};
use crate::support::postfix::PostfixOptions;
use crate::support::relay::{base_config, with_keys, Relay};
use crate::{message, run_peer, split_first_field, swaks_send, write_file, SENDER};

const PARTNER_NAME: &str = "mail.partner.test";
/// A domain nobody but the partner connector may relay to.
const FAR: &str = "bob@far.test";
/// An accepted domain: open to anonymous clients too.
const LOCAL: &str = "bob@example.test";

/// A relay that trusts the partner root for client certificates and has
/// the certificate-keyed `partner` connector, which may relay.
fn partner_relay(root: &TestCa) -> Relay {
    let config = with_keys(&base_config(), "tls", "client_ca = [\"partner-root.pem\"]");
    let config = format!(
        "{config}[[inbound]]\nname = \"partner\"\ntls_client_cert_names = [\"{PARTNER_NAME}\"]\n\
         allow_relay = true\n"
    );
    Relay::start_with_files(&config, &[("partner-root.pem", root.pem())])
}

/// The partner's certificate files: `(chain PEM: leaf then intermediate, key PEM)`.
struct ClientFiles {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    intermediate: PathBuf,
}

fn client_files(chain: &Chain) -> ClientFiles {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = write_file(dir.path(), "client.crt", chain.served_pem().as_bytes());
    let key = write_file(dir.path(), "client.key", chain.leaf.key_pem.as_bytes());
    let intermediate = write_file(
        dir.path(),
        "intermediate.crt",
        chain.intermediate.pem().as_bytes(),
    );
    ClientFiles {
        _dir: dir,
        cert,
        key,
        intermediate,
    }
}

fn partner_chain() -> Chain {
    Chain::new(&Spec::new(&[PARTNER_NAME], Key::P256).org("Partner Corp", "Mail"))
}

/// What the relay spooled for `recipient`: asserts it came over TLS, with
/// the client certificate verified and the partner connector (`true`), or
/// with no certificate and no connector (`false`).
fn assert_landed(relay: &Relay, recipient: &str, helo: &str, partner: bool) {
    let spooled = relay.wait_for_spooled(1);
    let found = spooled
        .iter()
        .find(|(_, envelope, _)| envelope.recipients.iter().any(|r| r.address == recipient));
    let Some((id, envelope, content)) = found else {
        panic!(
            "nothing spooled for {recipient}; spool: {:?}\nrelay log:\n{}",
            spooled
                .iter()
                .map(|(id, e, _)| (id, &e.recipients))
                .collect::<Vec<_>>(),
            relay.log()
        );
    };
    let (received, _) = split_first_field(content);
    assert_eq!(envelope.client.helo, helo, "{received}");
    assert!(
        envelope.client.tls.is_some() && received.contains("\t(using TLSv1."),
        "the session must have completed STARTTLS:\n{received}"
    );
    // RFC 3848: ESMTPSA is for SMTP AUTH; a certificate is not that.
    assert!(
        received.contains(&format!(" with ESMTPS id {id}")),
        "{received}"
    );
    if partner {
        assert_eq!(envelope.client.connector.as_deref(), Some("partner"));
        assert!(
            received.contains(&format!("(client certificate verified: CN={PARTNER_NAME}"))
                && received.contains("(tlsrelay; connector partner)"),
            "{received}"
        );
    } else {
        assert_eq!(envelope.client.connector, None, "{received}");
        assert!(received.contains("(no client certificate)"), "{received}");
    }
}

/// Postfix (OpenSSL) as the partner's MTA, relayhost tlsrelay: first with
/// TLS enforced and `smtp_tls_cert_file`/`smtp_tls_key_file` (relays to a
/// far domain), then opportunistic without a certificate (an accepted
/// domain, anonymous, still over TLS).
#[test]
#[ignore = "real peer: run by .ci/run"]
fn postfix_with_and_without_a_client_certificate() {
    let chain = partner_chain();
    let relay = partner_relay(&chain.root);
    let files = client_files(&chain);
    let cert = relay.cert_path();
    for (with_cert, to, helo) in [
        (true, FAR, "mta.partner.test"),
        (false, LOCAL, "mta.anonymous.test"),
    ] {
        // Anonymous, Postfix is opportunistic (`may`): a handshake it
        // cannot complete makes it retry in plaintext, which must not happen.
        let level = if with_cert { "encrypt" } else { "may" };
        let mut options = PostfixOptions::new()
            .hostname(helo)
            .relayhost(relay.smtp)
            .smtp_tls_security_level(level)
            .main_cf("smtp_tls_CAfile", &cert.display().to_string())
            .main_cf("smtp_tls_loglevel", "1");
        if with_cert {
            options = options
                .main_cf("smtp_tls_cert_file", &files.cert.display().to_string())
                .main_cf("smtp_tls_key_file", &files.key.display().to_string());
        }
        let postfix = options.start();
        swaks_send(
            postfix.smtp_addr(),
            "injector.test",
            to,
            "through Postfix",
            &[],
        );
        let log = postfix.wait_for_log("status=", Duration::from_secs(30));
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("to=<{to}>")) && l.contains("status=sent (250 ")),
            "Postfix should deliver to tlsrelay ({}):\n{log}\nrelay log:\n{}",
            if with_cert {
                "with certificate"
            } else {
                "anonymous"
            },
            relay.log()
        );
        assert_landed(&relay, to, helo, with_cert);
    }
}

/// msmtp (GnuTLS), with `tls_cert_file`/`tls_key_file` and without.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn msmtp_with_and_without_a_client_certificate() {
    let chain = partner_chain();
    let relay = partner_relay(&chain.root);
    let files = client_files(&chain);
    let tmp = tempfile::tempdir().expect("tempdir");
    for (with_cert, to, helo) in [
        (true, FAR, "msmtp.partner.test"),
        (false, LOCAL, "msmtp.anonymous.test"),
    ] {
        let sent = message("msmtp, client certificate");
        let data = write_file(tmp.path(), "message.eml", sent.as_bytes());
        let mut config = format!(
            "account relay\nhost 127.0.0.1\nport {}\ndomain {helo}\nauth off\n\
             tls on\ntls_starttls on\ntls_certcheck on\ntls_trust_file {}\n\
             tls_host_override relay.example.test\ntimeout 10\n",
            relay.smtp.port(),
            relay.cert_path().display()
        );
        if with_cert {
            config += &format!(
                "tls_cert_file {}\ntls_key_file {}\n",
                files.cert.display(),
                files.key.display()
            );
        }
        let config = write_file(tmp.path(), "msmtprc", config.as_bytes());
        run_peer(
            Command::new("sh")
                .args(["-c", r#"exec msmtp "$@" <"$0""#, arg(&data)])
                .args(["--file", arg(&config), "--account", "relay", "--debug"])
                .args(["-f", SENDER, to]),
        );
        assert_landed(&relay, to, helo, with_cert);
    }
}

/// Python's `ssl` (OpenSSL) through smtplib: `load_cert_chain` or nothing.
/// Without a certificate the far domain must be refused with 550 5.7.1.
const SMTPLIB: &str = r#"
import smtplib, ssl, sys
port, cafile, helo, sender, to, certfile, keyfile = sys.argv[1:8]
context = ssl.create_default_context(cafile=cafile)
context.check_hostname = False
if certfile:
    context.load_cert_chain(certfile, keyfile)
with smtplib.SMTP("127.0.0.1", int(port), local_hostname=helo, timeout=10) as smtp:
    smtp.starttls(context=context)
    print(smtp.sock.version(), smtp.sock.cipher()[0])
    smtp.ehlo(helo)
    if not certfile:
        smtp.mail(sender)
        code, text = smtp.rcpt("bob@far.test")
        if code != 550 or not text.startswith(b"5.7.1"):
            sys.exit(f"an anonymous client must not relay: {code} {text}")
        smtp.rset()
    smtp.sendmail(sender, [to], b"Subject: Python ssl\r\n\r\nbody\r\n")
"#;

#[test]
#[ignore = "real peer: run by .ci/run"]
fn python_ssl_with_and_without_a_client_certificate() {
    let chain = partner_chain();
    let relay = partner_relay(&chain.root);
    let files = client_files(&chain);
    let port = relay.smtp.port().to_string();
    let cert = relay.cert_path();
    for (with_cert, to, helo) in [
        (true, FAR, "python.partner.test"),
        (false, LOCAL, "python.anonymous.test"),
    ] {
        let (certfile, keyfile) = match with_cert {
            true => (arg(&files.cert), arg(&files.key)),
            false => ("", ""),
        };
        let transcript = run_peer(
            Command::new("python3")
                .args(["-c", SMTPLIB, &port, arg(&cert), helo, SENDER, to])
                .args([certfile, keyfile]),
        );
        assert!(transcript.starts_with("TLSv1.3 "), "{transcript}");
        assert_landed(&relay, to, helo, with_cert);
    }
}

/// Drives `openssl s_client -starttls smtp` (which sends its own EHLO and
/// STARTTLS) one command at a time: each line is written once the reply to
/// the previous one is complete; exits non-zero with the transcript when a
/// reply is not the expected code or the client dies (a failed handshake).
const S_CLIENT: &str = r#"
import subprocess, sys
port, helo, sender, to, cert, key, intermediate = sys.argv[1:8]
args = ["openssl", "s_client", "-quiet", "-starttls", "smtp", "-name", helo,
        "-connect", "127.0.0.1:" + port]
if cert:
    args += ["-cert", cert, "-key", key, "-cert_chain", intermediate]
proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT)
transcript = []
def reply():
    while True:
        line = proc.stdout.readline().decode(errors="replace")
        if not line:
            sys.exit("s_client ended:\n" + "".join(transcript))
        transcript.append(line)
        # s_client's own chatter (verify depth/return) is not a reply, nor
        # the last line of the plaintext EHLO reply, which s_client echoes
        # after its handshake (no EHLO after TLS offers STARTTLS).
        if line.rstrip() == "250 STARTTLS":
            continue
        if len(line) >= 4 and line[:3].isdigit() and line[3] == " ":
            return line[:3]
def send(line, expect):
    proc.stdin.write(line.encode() + b"\r\n")
    proc.stdin.flush()
    transcript.append(">>> " + line + "\n")
    got = reply()
    if got != expect:
        sys.exit(f"{line!r}: expected {expect}, got {got}:\n" + "".join(transcript))
send("EHLO " + helo, "250")
send("MAIL FROM:<" + sender + ">", "250")
if not cert:
    send("RCPT TO:<bob@far.test>", "550")
send("RCPT TO:<" + to + ">", "250")
send("DATA", "354")
send("Subject: openssl s_client\r\n\r\nbody\r\n.", "250")
send("QUIT", "221")
proc.stdin.close()
proc.wait(timeout=10)
print("".join(transcript))
"#;

#[test]
#[ignore = "real peer: run by .ci/run"]
fn openssl_s_client_with_and_without_a_client_certificate() {
    let chain = partner_chain();
    let relay = partner_relay(&chain.root);
    let files = client_files(&chain);
    let port = relay.smtp.port().to_string();
    for (with_cert, to, helo) in [
        (true, FAR, "openssl.partner.test"),
        (false, LOCAL, "openssl.anonymous.test"),
    ] {
        // `-cert` sends the leaf alone; `-cert_chain` adds the intermediate.
        let (cert, key, intermediate) = match with_cert {
            true => (arg(&files.cert), arg(&files.key), arg(&files.intermediate)),
            false => ("", "", ""),
        };
        run_peer(
            Command::new("python3")
                .args(["-c", S_CLIENT, &port, helo, SENDER, to])
                .args([cert, key, intermediate]),
        );
        assert_landed(&relay, to, helo, with_cert);
    }
}

/// swaks (Net::SSLeay, OpenSSL) with `--tls-cert`/`--tls-key`. Debian 12's
/// swaks sends the leaf alone (no `--tls-chain` before 2024), so its
/// certificate is issued by the partner root itself.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn swaks_with_a_client_certificate_relays() {
    let root = TestCa::root("partner test root", Key::P256);
    let relay = partner_relay(&root);
    let leaf = root.leaf(&Spec::new(&[PARTNER_NAME], Key::P256));
    let tmp = tempfile::tempdir().expect("tempdir");
    let cert = write_file(tmp.path(), "client.crt", leaf.cert_pem.as_bytes());
    let key = write_file(tmp.path(), "client.key", leaf.key_pem.as_bytes());
    let tls = ["--tls", "--tls-cert", arg(&cert), "--tls-key", arg(&key)];
    swaks_send(
        relay.smtp,
        "swaks.partner.test",
        FAR,
        "swaks, client certificate",
        &tls,
    );
    assert_landed(&relay, FAR, "swaks.partner.test", true);
}
