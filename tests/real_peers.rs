//! The real-peer suite: tlsrelay against real mail software from Debian
//! (Postfix, smtp-sink, swaks, msmtp, Python's smtplib, testssl.sh,
//! openssl, gnutls-cli). `.ci/run` installs the packages and runs
//! `cargo test --test real_peers -- --ignored --test-threads=1`; a plain
//! `cargo test` skips it.
//!
//! * `addresses`: smtplib's Unicode sender spellings meet the sender
//!   restriction; swaks sends to and from address literals.
//! * `chunking`: Postfix's smtpd gets the relay's deliveries by BDAT
//!   (RFC 3030), byte for byte, 8-bit and never dot-stuffed; with
//!   CHUNKING hidden, by DATA, just as intact.
//! * `clients`: swaks, msmtp and smtplib deliver into the spool, byte for byte.
//! * `client_certs`: Postfix, msmtp, Python `ssl`, `openssl s_client` and
//!   swaks with and without a client certificate against a
//!   certificate-keyed inbound connector.
//! * `postfix`: the Postfix harness itself, Postfix as a STARTTLS server for
//!   `cert-info`, and Postfix relaying through tlsrelay with TLS enforced.
//! * `dane_dns`: our DNSSEC-validating lookups (MX, A, TLSA) against nsd
//!   serving a tree ldns signed for this run: secure, insecure, bogus,
//!   secure denial, a silent server, caching; `ldns-dane` and `cert-info`
//!   agree on the `3 1 1` record.
//! * `dane_delivery`: the relay delivering under DANE against nsd and a
//!   signed tree: a right `3 1 1` key over TLS to a self-signed
//!   certificate, a wrong key and a bogus TLSA deferred 4.7.x naming DANE
//!   with nothing at the receiver, an insecure zone opportunistic.
//! * `dane_matrix`: issue 15's acceptance matrix: DANE against signed
//!   zones served by nsd and real receivers (Postfix, scripted TLS ones,
//!   one without STARTTLS, a STARTTLS-stripping proxy) on several
//!   addresses of one port, in a network namespace of the test's own;
//!   what each receiver saw, the queue state, the log's `dane=` and
//!   `probe` for every cell.
//! * `mta_sts`: issue 16's MTA-STS acceptance: a policy server on
//!   OpenSSL and the test DNS; enforce and testing against Postfix
//!   receivers (good, wrong-name, self-signed certificates, a
//!   STARTTLS-stripping proxy) in a network namespace; policies that
//!   cannot be had; the cache across a down server, a restart and a
//!   changed id; `queue list`, `tls-rpt show` and `report --json` checked
//!   against what the receivers saw.
//! * `requiretls`: issue 17's REQUIRETLS acceptance, outbound: flagged
//!   messages against a receiver on OpenSSL that offers REQUIRETLS,
//!   Postfix (which does not), self-signed, plaintext-only and
//!   STARTTLS-stripped hops, reached by connector, MTA-STS, plain MX and
//!   DNSSEC/DANE; delivered with the parameter or returned with 5.7.30
//!   and a headers-only notice, judged by what each receiver saw.
//! * `requiretls_inbound`: issue 17's inbound REQUIRETLS: smtplib,
//!   `openssl s_client` and `gnutls-cli` over STARTTLS see it offered and
//!   have a flagged message taken (`queue show`, the log); in plaintext
//!   (smtplib, swaks) and behind a STARTTLS-stripping proxy it is not
//!   offered and `MAIL … REQUIRETLS` is refused `530 5.7.10`.
//! * `faults`: disk full (a small tmpfs) and a read-only spool.
//! * `flow`: with the delivery backlog at `backlog_limit`, swaks and
//!   `smtp-source` get `452 4.3.1` at `MAIL`.
//! * `soak`: 20,000 messages from smtp-source through 5 SIGKILLs to smtp-sink.
//! * `quick_start`: the README's quick start, the relay on
//!   `config/tlsrelay.toml`, the mailbox example and swaks.
//! * `report_html`: `tlsrelay report --html` rendered by headless
//!   Chromium: a non-blank screenshot, and the page's figure cells equal
//!   `report --json`.
//! * `service`: `systemd-analyze verify` accepts `config/tlsrelay.service`;
//!   the README's service recipe as an unprivileged user; port 25 without
//!   CAP_NET_BIND_SERVICE; the real unit where systemd runs.
//! * `testssl`: testssl.sh audits the STARTTLS listener.
//! * `tls_matrix`: issue 5's acceptance matrix, every outbound TLS level
//!   against Postfix receivers (TLS 1.3, 1.2 only, none, CA-signed, wrong
//!   name, self-signed, expired, TLS 1.0/1.1 only, client certificate
//!   required) and scripted ones whose STARTTLS breaks; `probe` against them.

mod support;

// A test target's root resolves modules beside it, in tests/.
#[path = "real_peers/addresses.rs"]
mod addresses;
#[path = "real_peers/chunking.rs"]
mod chunking;
#[path = "real_peers/client_certs.rs"]
mod client_certs;
#[path = "real_peers/clients.rs"]
mod clients;
#[path = "real_peers/dane_delivery.rs"]
mod dane_delivery;
#[path = "real_peers/dane_dns.rs"]
mod dane_dns;
#[path = "real_peers/dane_matrix.rs"]
mod dane_matrix;
#[path = "real_peers/delivery.rs"]
mod delivery;
#[path = "real_peers/faults.rs"]
mod faults;
#[path = "real_peers/flow.rs"]
mod flow;
#[path = "real_peers/mta_sts.rs"]
mod mta_sts;
#[path = "real_peers/postfix.rs"]
mod postfix;
#[path = "real_peers/quick_start.rs"]
mod quick_start;
#[path = "real_peers/report_html.rs"]
mod report_html;
#[path = "real_peers/requiretls.rs"]
mod requiretls;
#[path = "real_peers/requiretls_inbound.rs"]
mod requiretls_inbound;
#[path = "real_peers/service.rs"]
mod service;
#[path = "real_peers/soak.rs"]
mod soak;
#[path = "real_peers/testssl.rs"]
mod testssl;
#[path = "real_peers/tls_matrix.rs"]
mod tls_matrix;
#[path = "real_peers/tls_rpt.rs"]
mod tls_rpt;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::relay::Relay;
use tlsrelay::queue::envelope::Envelope;

/// The envelope sender every test uses.
const SENDER: &str = "alice@sender.test";

/// The message a peer sends, byte for byte: CRLF line ends; the headers msmtp
/// and Postfix would otherwise add (From, Date, Message-ID) already there;
/// lines that need dot-stuffing, including a lone dot; an empty line, a tab
/// and trailing white space.
fn message(subject: &str) -> String {
    format!(
        "From: Alice <{SENDER}>\r\n\
         To: Bob <bob@example.test>\r\n\
         Date: Sun, 22 Nov 2026 07:00:00 +0000\r\n\
         Message-ID: <real-peer.1@sender.test>\r\n\
         Subject: {subject}\r\n\
         \r\n\
         line one\r\n\
         .a line that starts with a dot\r\n\
         ..and one with two\r\n\
         .\r\n\
         \r\n\
         \ttab first, trailing space last \r\n\
         last line\r\n"
    )
}

/// Writes `contents` to `dir/name` and returns the path.
fn write_file(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// The one message in a relay's spool, split into our `Received:` header
/// field and everything after it.
struct Spooled {
    id: String,
    envelope: Envelope,
    received: String,
    rest: Vec<u8>,
}

impl Spooled {
    /// Waits (bounded) for exactly one message in `relay`'s spool.
    fn one(relay: &Relay) -> Spooled {
        let mut spooled = relay.wait_for_spooled(1);
        assert_eq!(
            spooled.len(),
            1,
            "expected one spooled message; relay log:\n{}",
            relay.log()
        );
        let (id, envelope, content) = spooled.remove(0);
        let (received, rest) = split_first_field(&content);
        assert!(
            received.starts_with("Received: from "),
            "the spooled message must start with our Received header:\n{}",
            String::from_utf8_lossy(&content)
        );
        Spooled {
            id,
            envelope,
            received,
            rest: rest.to_vec(),
        }
    }

    /// Envelope sender, recipients (in order) and the client's EHLO name.
    fn assert_envelope(&self, recipients: &[&str], helo: &str) {
        assert_eq!(self.envelope.sender, SENDER);
        let got: Vec<&str> = self
            .envelope
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(got, recipients);
        assert_eq!(self.envelope.client.helo, helo);
        assert!(
            self.received
                .starts_with(&format!("Received: from {helo} (unknown [127.0.0.1])\r\n")),
            "{}",
            self.received
        );
    }

    /// Everything after our Received header is exactly `sent`.
    fn assert_content(&self, sent: &[u8]) {
        assert_eq!(
            String::from_utf8_lossy(&self.rest),
            String::from_utf8_lossy(sent),
            "content after our Received header"
        );
    }

    /// No TLS: `with ESMTP`, no `(using …)` comment, no TLS in the envelope.
    fn assert_plaintext(&self) {
        assert!(
            self.received.contains(&format!(
                "\tby relay.example.test (tlsrelay) with ESMTP id {}",
                self.id
            )) && !self.received.contains("(using"),
            "{}",
            self.received
        );
        assert_eq!(self.envelope.client.tls, None);
    }

    /// TLS 1.3 with exactly the cipher the client reported (its IANA
    /// name, e.g. `TLS_AES_256_GCM_SHA384`, as OpenSSL and Postfix print
    /// it), in the Received header and the envelope alike; `with ESMTPS`.
    fn assert_tls13(&self, cipher: &str) {
        let ours = self
            .received
            .split_once("\t(using TLSv1.3 with cipher ")
            .and_then(|(_, after)| after.split([' ', ')']).next())
            .unwrap_or_else(|| panic!("no TLSv1.3 in our Received header:\n{}", self.received));
        assert_eq!(
            ours, cipher,
            "Received names cipher {ours}, the client negotiated {cipher}:\n{}",
            self.received
        );
        assert!(
            self.received.contains(&format!(
                "\tby relay.example.test (tlsrelay) with ESMTPS id {}",
                self.id
            )),
            "{}",
            self.received
        );
        assert_eq!(
            self.envelope.client.tls.as_deref(),
            Some(format!("TLSv1.3 {ours}").as_str())
        );
    }
}

/// The first header field of `content` with its continuation lines (CRLFs
/// kept), and what follows it.
fn split_first_field(content: &[u8]) -> (String, &[u8]) {
    let mut end = 0;
    while let Some(eol) = content[end..].windows(2).position(|w| w == b"\r\n") {
        end += eol + 2;
        if !matches!(content.get(end), Some(b' ' | b'\t')) {
            break;
        }
    }
    (
        String::from_utf8_lossy(&content[..end]).into_owned(),
        &content[end..],
    )
}

/// The IANA name of a TLS 1.3 cipher GnuTLS prints by its AEAD alone
/// (`AES-256-GCM`): each AEAD has exactly one TLS 1.3 suite (RFC 8446 §B.4).
fn gnutls_tls13_cipher(aead: &str) -> String {
    let hash = match aead {
        "AES-256-GCM" => "SHA384",
        _ => "SHA256",
    };
    format!("TLS_{}_{hash}", aead.replace('-', "_"))
}

/// Runs a peer's command (bounded) and panics, quoting its output, unless it
/// succeeds; returns its stdout and stderr, in that order.
fn run_peer(command: &mut Command) -> String {
    let output = support::postfix::run_bounded(command, Duration::from_secs(30));
    let transcript = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{transcript}",
        output.status
    );
    transcript
}

/// swaks sends `message(subject)` from [`SENDER`] to `to` (comma-separated)
/// with EHLO `helo`, plus the `extra` options; returns the message and
/// swaks' transcript.
fn swaks_send(
    server: SocketAddr,
    helo: &str,
    to: &str,
    subject: &str,
    extra: &[&str],
) -> (String, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sent = message(subject);
    // swaks ends DATA with its own CRLF.CRLF after the file's content: a file
    // that ends in CRLF would gain an empty line.
    let data = sent.strip_suffix("\r\n").expect("message ends in CRLF");
    let data = write_file(tmp.path(), "swaks.eml", data.as_bytes());
    let transcript = run_peer(
        Command::new("swaks")
            .args(["--server", &server.to_string(), "--timeout", "10"])
            .args(["--helo", helo, "--from", SENDER, "--to", to])
            .arg("--data")
            .arg(&data)
            .args(extra),
    );
    (sent, transcript)
}
