//! Delivery to real receivers: Postfix's `smtp-sink` and a Python
//! `aiosmtpd` server. What they received is compared with what swaks sent.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::support::postfix::{free_port, SmtpSink};
use super::support::relay::Relay;
use super::{message, swaks_send, SENDER};

/// A relay that carries example.test to `to` with `tls`, relaying for localhost.
pub(super) fn relay_to(to: SocketAddr, tls: &str) -> Relay {
    Relay::start_with(&format!(
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [[outbound]]\nname = \"receiver\"\nrecipient_domains = [\"example.test\"]\nsmarthosts = [\"{to}\"]\ntls = \"{tls}\"\n\
         [queue]\nretry_intervals = [\"1s\"]\n\
         [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n"
    ))
}

/// The content after the Received header we added (for swaks' EHLO
/// `client.test`) in a received message, line ends as the receiver wrote them.
fn after_our_received(message: &str) -> &str {
    let start = message
        .find("Received: from client.test ")
        .unwrap_or_else(|| panic!("no Received header of ours in:\n{message}"));
    let ours = &message[start..];
    let mut end = 0;
    loop {
        end += ours[end..].find('\n').map_or(ours.len() - end, |i| i + 1);
        if !ours[end..].starts_with('\t') {
            return &ours[end..];
        }
    }
}

#[test]
#[ignore = "real peer: run by .ci/run"]
fn smtp_sink_receives_the_message_intact_both_recipients_in_one_transaction() {
    let sink = SmtpSink::start("sink.example.test", &[]);
    let relay = relay_to(sink.addr(), "opportunistic");
    let (sent, _) = swaks_send(
        relay.smtp,
        "client.test",
        "bob@example.test,carol@example.test",
        "to the sink",
        &[],
    );
    // Complete messages only: smtp-sink creates the file at DATA and
    // writes it as the content arrives.
    let messages = sink.wait_for_messages(1, Duration::from_secs(30));
    assert_eq!(messages.len(), 1, "{messages:?}");
    let got = &messages[0];
    // smtp-sink writes the envelope as X- lines in front: one MAIL, both RCPTs.
    assert!(got.contains(&format!("X-Mail-Args: <{SENDER}>")), "{got}");
    assert!(got.contains("X-Rcpt-Args: <bob@example.test>"), "{got}");
    assert!(got.contains("X-Rcpt-Args: <carol@example.test>"), "{got}");
    assert_eq!(
        got.matches("X-Mail-Args:").count(),
        1,
        "one transaction: {got}"
    );
    // smtp-sink stores lines with LF and ends the file with an empty line.
    assert_eq!(
        after_our_received(got),
        format!("{}\n", sent.replace("\r\n", "\n")),
        "identical apart from our Received header"
    );
    relay.wait_for_log("plaintext (STARTTLS not offered)", 1);
    assert_eq!(sent, message("to the sink"));
}

/// An aiosmtpd server that writes each message it receives to DIR as JSON.
struct AioSmtpd {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

const AIOSMTPD: &str = r#"
import base64, json, os, sys, time
from aiosmtpd.controller import Controller
class Keep:
    async def handle_DATA(self, server, session, envelope):
        n = len(os.listdir(sys.argv[2]))
        with open(os.path.join(sys.argv[2], f"{n}.json"), "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                       "content": base64.b64encode(envelope.original_content).decode()}, f)
        return "250 2.0.0 kept"
tls = {}
if len(sys.argv) > 3:
    # STARTTLS that requires a client certificate from the CA in argv[5].
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[3], sys.argv[4])
    context.load_verify_locations(sys.argv[5])
    context.verify_mode = ssl.CERT_REQUIRED
    tls = {"tls_context": context, "require_starttls": False}
controller = Controller(Keep(), hostname="127.0.0.1", port=int(sys.argv[1]), **tls)
controller.start()
print("ready", flush=True)
time.sleep(300)
"#;

impl AioSmtpd {
    fn start() -> AioSmtpd {
        AioSmtpd::start_with(&[])
    }

    /// With `tls` = certificate, key and client CA files: STARTTLS offered,
    /// a client certificate from that CA required, plaintext still taken.
    fn start_with(tls: &[&std::path::Path]) -> AioSmtpd {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut child = Command::new("python3")
            .args(["-c", AIOSMTPD, &port.to_string()])
            .arg(dir.path())
            .args(tls)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
        AioSmtpd {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        }
    }

    /// What it received, once it has anything (bounded; quoting `relay`'s
    /// log when nothing comes).
    fn wait_messages(&self, relay: &Relay) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let messages = self.messages();
            if !messages.is_empty() {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd got nothing; relay log:\n{}",
                relay.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn messages(&self) -> Vec<serde_json::Value> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
            .collect()
    }
}

impl Drop for AioSmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "real peer: run by .ci/run"]
fn aiosmtpd_receives_the_message_intact_with_its_envelope() {
    let receiver = AioSmtpd::start();
    let relay = relay_to(receiver.addr, "opportunistic");
    let (sent, _) = swaks_send(
        relay.smtp,
        "client.test",
        "bob@example.test,carol@example.test",
        "to aiosmtpd",
        &[],
    );
    let messages = receiver.wait_messages(&relay);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["from"], SENDER);
    assert_eq!(
        messages[0]["to"],
        serde_json::json!(["bob@example.test", "carol@example.test"])
    );
    let content = base64_decode(messages[0]["content"].as_str().unwrap_or_default());
    assert_eq!(after_our_received(&String::from_utf8_lossy(&content)), sent);
}

/// Opportunistic delivery to a server that demands a client certificate
/// but takes plaintext (issue 12, item 6). Over TLS 1.3 the demand comes
/// after the client's handshake is done, as a refusal of the next EHLO;
/// over TLS 1.2 the handshake fails. Both are failed rungs of the ladder,
/// so the mail goes down to plaintext and is delivered, instead of
/// waiting for a TLS 1.3 session the server will never accept.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn opportunistic_mail_goes_down_the_ladder_past_a_server_that_wants_a_client_certificate() {
    use super::support::ca::{Chain, Key, Spec};
    let chain = Chain::new(&Spec::new(&["mx.example.test"], Key::P256));
    let files = tempfile::tempdir().expect("tempdir");
    let cert = super::write_file(files.path(), "mx.crt", chain.served_pem().as_bytes());
    let key = super::write_file(files.path(), "mx.key", chain.leaf.key_pem.as_bytes());
    let ca = super::write_file(files.path(), "ca.crt", chain.root.pem().as_bytes());
    let receiver = AioSmtpd::start_with(&[&cert, &key, &ca]);
    let relay = relay_to(receiver.addr, "opportunistic");
    let (sent, _) = swaks_send(
        relay.smtp,
        "client.test",
        "bob@example.test",
        "to a server that wants a client certificate",
        &[],
    );
    let messages = receiver.wait_messages(&relay);
    assert_eq!(messages.len(), 1);
    let content = base64_decode(messages[0]["content"].as_str().unwrap_or_default());
    assert_eq!(after_our_received(&String::from_utf8_lossy(&content)), sent);
    // Both TLS rungs were tried and failed before the plaintext one.
    let log = relay.log();
    assert!(
        log.contains("TLS failed on rung Modern (refused right after the TLS handshake")
            && log.contains("TLS failed on rung Tls12")
            && log.contains("plaintext (TLS failed on higher rungs)"),
        "the TLS 1.3 rung should fail after its handshake, then TLS 1.2:\n{log}"
    );
}

/// Standard base64, without another dependency.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes().filter(|b| *b != b'=') {
        let Some(value) = ALPHABET.iter().position(|&c| c == byte) else {
            continue;
        };
        buffer = (buffer << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}
