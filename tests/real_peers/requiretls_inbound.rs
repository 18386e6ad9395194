//! Issue 17's inbound acceptance (REQUIRETLS, RFC 8689 §4.1) with real
//! clients: Python's smtplib (OpenSSL), `openssl s_client -starttls smtp`
//! and GnuTLS' `gnutls-cli --starttls-proto=smtp` see `REQUIRETLS` in the
//! EHLO after STARTTLS and have `MAIL FROM:<…> REQUIRETLS` taken, the
//! message spooled with the flag (`queue show`, the `message accepted`
//! line). In plaintext (smtplib, swaks) the EHLO lacks it and the MAIL is
//! refused `530 5.7.10`, logged `refused`, nothing spooled; and so it is
//! behind a STARTTLS-stripping proxy, where an opportunistic client goes
//! on in plaintext.

use std::net::TcpListener;
use std::process::Command;

use serde_json::Value;

use crate::mta_sts::check::events as log_events;
use crate::support::dane_lab::StripProxy;
use crate::support::relay::Relay;
use crate::support::{arg, stdout, tlsrelay};
use crate::{run_peer, swaks_send, SENDER};

const REFUSAL: &str = "530 5.7.10 REQUIRETLS needs a TLS session: issue STARTTLS first";

/// Runs the client command given before `--` (a TLS client that did the
/// STARTTLS exchange itself) and talks SMTP through it: each `CODE LINE`
/// argument after `--` is written once the previous reply is complete and
/// must be answered CODE. Prints every line sent and every reply line;
/// exits non-zero with that transcript on another code or when the client
/// ends. A 20 s watchdog kills the client.
const DRIVER: &str = r#"
import subprocess, sys, threading
split = sys.argv.index("--")
client, steps = sys.argv[1:split], sys.argv[split + 1:]
proc = subprocess.Popen(client, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT)
watchdog = threading.Timer(20, proc.kill)
watchdog.daemon = True
watchdog.start()
transcript = []
def reply():
    lines = []
    while True:
        line = proc.stdout.readline().decode(errors="replace")
        if not line:
            proc.kill()
            sys.exit("the client ended:\n" + "".join(transcript))
        # Client chatter (certificate, handshake) is no reply; nor the
        # plaintext EHLO's last line, which s_client echoes after its
        # handshake (no EHLO under TLS offers STARTTLS).
        if line[:3].isdigit() and line[3:4] in ("-", " ") and line.rstrip() != "250 STARTTLS":
            transcript.append(line)
            lines.append(line)
            if line[3] == " ":
                return line[:3]
for step in steps:
    expect, line = step.split(" ", 1)
    proc.stdin.write(line.encode() + b"\r\n")
    proc.stdin.flush()
    transcript.append(">>> " + line + "\n")
    got = reply()
    if got != expect:
        proc.kill()
        sys.exit(f"{line!r}: expected {expect}, got {got}:\n" + "".join(transcript))
proc.stdin.close()
proc.wait(timeout=10)
print("".join(transcript), end="")
"#;

/// One flagged transaction, EHLO first, QUIT last, as driver steps.
fn flagged_steps(helo: &str) -> Vec<String> {
    vec![
        format!("250 EHLO {helo}"),
        format!("250 MAIL FROM:<{SENDER}> REQUIRETLS"),
        "250 RCPT TO:<bob@example.test>".into(),
        "354 DATA".into(),
        "250 Subject: flagged\r\n\r\nbody\r\n.".into(),
        "221 QUIT".into(),
    ]
}

/// `client` (argv) through [`DRIVER`] and `steps`; the transcript.
fn drive(client: &[&str], steps: &[String]) -> String {
    run_peer(
        Command::new("python3")
            .args(["-c", DRIVER])
            .args(client)
            .arg("--")
            .args(steps),
    )
}

/// `client` (a STARTTLS client command) through one flagged transaction
/// with EHLO `helo`: its EHLO after STARTTLS ends with REQUIRETLS, and
/// the message is spooled flagged.
fn assert_driven_and_flagged(relay: &Relay, client: &[&str], helo: &str) {
    let transcript = drive(client, &flagged_steps(helo));
    let ehlo = ehlo_reply(&transcript);
    assert!(ehlo.ends_with("250 REQUIRETLS"), "{transcript}");
    assert_flagged(relay);
}

/// The reply to the EHLO after STARTTLS, from a [`DRIVER`] transcript.
fn ehlo_reply(transcript: &str) -> String {
    let (_, after) = transcript
        .split_once(">>> EHLO ")
        .unwrap_or_else(|| panic!("no EHLO:\n{transcript}"));
    after
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with(">>> "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The one message spooled came over TLS flagged REQUIRETLS, and says so
/// in `queue show` and on its `message accepted` line.
fn assert_flagged(relay: &Relay) {
    let spooled = relay.wait_for_spooled(1);
    assert_eq!(spooled.len(), 1, "{}", relay.log());
    let (id, envelope, _) = &spooled[0];
    assert!(envelope.requiretls, "{envelope:?}");
    assert!(envelope.client.tls.is_some(), "{envelope:?}");
    let config = relay.dir().join("tlsrelay.toml");
    let show = stdout(&tlsrelay(&["queue", "show", id, "-c", arg(&config)]));
    let options = show
        .lines()
        .find(|l| l.starts_with("options:"))
        .unwrap_or_else(|| panic!("no options line:\n{show}"));
    assert!(
        options.split_whitespace().any(|o| o == "REQUIRETLS"),
        "{show}"
    );
    relay.wait_for_log("message accepted", 1);
    let accepted: Vec<Value> = log_events(relay, "message accepted");
    assert_eq!(accepted.len(), 1, "{}", relay.log());
    assert_eq!(accepted[0]["fields"]["queue_id"], id.as_str());
    assert_eq!(accepted[0]["fields"]["requiretls"], true, "{}", accepted[0]);
}

/// MAIL … REQUIRETLS was refused in plaintext, logged `refused` with the
/// 530 5.7.10, and nothing was spooled.
fn assert_refused_in_plaintext(relay: &Relay) {
    relay.wait_for_log("5.7.10", 1);
    let refused: Vec<Value> = log_events(relay, "refused")
        .into_iter()
        .filter(|e| e["fields"]["reply"] == REFUSAL)
        .collect();
    assert_eq!(refused.len(), 1, "{}", relay.log());
    let fields = &refused[0]["fields"];
    assert_eq!(
        (&fields["command"], &fields["address"], &fields["tls"]),
        (
            &Value::from("MAIL"),
            &Value::from(format!("<{SENDER}>")),
            &Value::from("plaintext")
        ),
        "{fields}"
    );
    assert!(relay.spooled().is_empty(), "{:?}", relay.spool_files());
    assert!(log_events(relay, "message accepted").is_empty());
}

/// smtplib over STARTTLS (verifying our certificate): the EHLO before
/// offers STARTTLS and not REQUIRETLS, the one after REQUIRETLS, and
/// `sendmail(..., mail_options=["REQUIRETLS"])` goes through.
const SMTPLIB_TLS: &str = r#"
import smtplib, ssl, sys
port, cafile, sender = sys.argv[1:4]
context = ssl.create_default_context(cafile=cafile)
context.check_hostname = False
with smtplib.SMTP("127.0.0.1", int(port), local_hostname="python.test", timeout=10) as smtp:
    smtp.ehlo()
    if not smtp.has_extn("starttls") or smtp.has_extn("requiretls"):
        sys.exit(f"plaintext EHLO: {smtp.esmtp_features}")
    smtp.starttls(context=context)
    smtp.ehlo()
    if not smtp.has_extn("requiretls"):
        sys.exit(f"EHLO after STARTTLS: {smtp.esmtp_features}")
    smtp.sendmail(sender, ["bob@example.test"], b"Subject: flagged\r\n\r\nbody\r\n",
                  mail_options=["REQUIRETLS"])
    print(smtp.sock.version())
"#;

#[test]
#[ignore = "real peer: run by .ci/run"]
fn smtplib_requiretls_over_starttls_is_taken_and_flagged() {
    let relay = Relay::start("");
    let port = relay.smtp.port().to_string();
    let cert = relay.cert_path();
    let transcript =
        run_peer(Command::new("python3").args(["-c", SMTPLIB_TLS, &port, arg(&cert), SENDER]));
    assert!(transcript.starts_with("TLSv1.3"), "{transcript}");
    assert_flagged(&relay);
}

#[test]
#[ignore = "real peer: run by .ci/run"]
fn openssl_s_client_requiretls_over_starttls_is_taken_and_flagged() {
    let relay = Relay::start("");
    let cert = relay.cert_path();
    let connect = relay.smtp.to_string();
    let client = [
        "openssl",
        "s_client",
        "-quiet",
        "-starttls",
        "smtp",
        "-name",
        "openssl.test",
        "-connect",
        &connect,
        "-CAfile",
        arg(&cert),
        "-verify_return_error",
        "-verify_hostname",
        "relay.example.test",
    ];
    assert_driven_and_flagged(&relay, &client, "openssl.test");
}

#[test]
#[ignore = "real peer: run by .ci/run"]
fn gnutls_cli_requiretls_over_starttls_is_taken_and_flagged() {
    let relay = Relay::start("");
    let cert = relay.cert_path();
    let port = relay.smtp.port().to_string();
    let client = [
        "gnutls-cli",
        "--starttls-proto=smtp",
        "--port",
        &port,
        "--x509cafile",
        arg(&cert),
        "--verify-hostname",
        "relay.example.test",
        "127.0.0.1",
    ];
    assert_driven_and_flagged(&relay, &client, "gnutls.test");
}

/// smtplib in plaintext: no REQUIRETLS in the EHLO; MAIL with it is
/// answered 530 5.7.10, and RCPT and DATA after it find no transaction.
/// `never` never asks for STARTTLS; `opportunistic` does when it is
/// offered. Prints the MAIL reply.
const SMTPLIB_PLAIN: &str = r#"
import smtplib, sys
port, sender, starttls = sys.argv[1:4]
with smtplib.SMTP("127.0.0.1", int(port), local_hostname="python.test", timeout=10) as smtp:
    smtp.ehlo()
    if smtp.has_extn("requiretls"):
        sys.exit(f"plaintext EHLO offers REQUIRETLS: {smtp.esmtp_features}")
    if starttls == "opportunistic" and smtp.has_extn("starttls"):
        smtp.starttls()
        smtp.ehlo()
    code, text = smtp.mail(sender, ["REQUIRETLS"])
    print(code, text.decode())
    if code == 250:
        sys.exit("MAIL REQUIRETLS taken in plaintext")
    for command in ("RCPT TO:<bob@example.test>", "DATA"):
        code, text = smtp.docmd(command)
        if code != 503:
            sys.exit(f"{command}: {code} {text}")
"#;

/// [`SMTPLIB_PLAIN`] against `port`; its output.
fn smtplib_plain(port: u16, starttls: &str) -> String {
    let port = port.to_string();
    run_peer(Command::new("python3").args(["-c", SMTPLIB_PLAIN, &port, SENDER, starttls]))
}

#[test]
#[ignore = "real peer: run by .ci/run"]
fn plaintext_requiretls_is_refused_and_logged() {
    let relay = Relay::start("");
    let transcript = smtplib_plain(relay.smtp.port(), "never");
    assert_eq!(transcript.trim(), REFUSAL, "{transcript}");
    assert_refused_in_plaintext(&relay);
}

/// swaks reads the EHLO in plaintext and after STARTTLS: REQUIRETLS only
/// in the second. (swaks cannot add a MAIL parameter; smtplib does that.)
#[test]
#[ignore = "real peer: run by .ci/run"]
fn swaks_sees_requiretls_only_after_starttls() {
    let relay = Relay::start("");
    for (tls, offered) in [(false, false), (true, true)] {
        let mut extra = vec!["--quit-after", "EHLO"];
        if tls {
            extra.push("--tls");
        }
        let (_, transcript) =
            swaks_send(relay.smtp, "swaks.test", "bob@example.test", "ehlo", &extra);
        // Server lines: `<-` in plaintext, `<~` under TLS.
        let offers = transcript
            .lines()
            .any(|l| l.starts_with('<') && l.ends_with("REQUIRETLS"));
        assert_eq!(offers, offered, "TLS {tls}:\n{transcript}");
    }
}

/// An attacker between client and relay strips STARTTLS from the EHLO:
/// the opportunistic client goes on in plaintext and asks for REQUIRETLS
/// anyway; the relay refuses it and spools nothing.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn behind_a_starttls_stripping_proxy_requiretls_is_refused() {
    let relay = Relay::start("");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let proxy = StripProxy::on(listener, relay.smtp);
    let transcript = smtplib_plain(proxy.addr.port(), "opportunistic");
    assert_eq!(transcript.trim(), REFUSAL, "{transcript}");
    assert!(
        proxy.stripped() >= 1,
        "the proxy never saw STARTTLS offered"
    );
    let sent = proxy.sent();
    assert!(
        sent.iter()
            .any(|s| String::from_utf8_lossy(s).contains("REQUIRETLS\r\n")),
        "the MAIL went through the proxy in plaintext: {sent:?}"
    );
    assert_refused_in_plaintext(&relay);
}
