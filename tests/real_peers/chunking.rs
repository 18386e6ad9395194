//! BDAT (RFC 3030 CHUNKING) to a real receiver. Postfix's smtpd offers
//! CHUNKING by default, so the relay's deliveries to it go by BDAT: the
//! content exactly as spooled, not dot-stuffed. Two messages, a small one
//! and one of about 300 KB with lines that DATA would stuff (a leading
//! dot, a lone dot, the last line a lone dot) and 8-bit bytes, must be in
//! Postfix's maildir byte for byte after its own Received header, and
//! Postfix's summary of our sessions must count `bdat`, never `data`.
//! With CHUNKING hidden (`smtpd_discard_ehlo_keywords = chunking`) the
//! same messages go by DATA, and arrive just as intact.

use std::time::{Duration, Instant};

use super::delivery::relay_to;
use super::support::postfix::{Postfix, PostfixOptions, SessionSummary};
use super::support::relay::Relay;
use super::support::smtp::{assert_queued, Client};
use super::support::split_received;
use super::{message, SENDER};

/// The recipient, in a domain the relay routes to the Postfix receiver
/// and Postfix delivers to its maildir.
const RCPT: &str = "bob@example.test";

/// How long the relay and Postfix together may take to deliver and log.
const DEADLINE: Duration = Duration::from_secs(60);

/// About 300 KB of content, CRLF line ends: headers, then lines of which
/// every seventh starts with a dot, every eleventh is a lone dot and the
/// last is one too; every line after the headers carries 8-bit bytes, the
/// whole range 0x80-0xFF (Latin-1 and UTF-8 alike), and no line is longer
/// than Postfix's `line_length_limit`.
fn large_message() -> Vec<u8> {
    let mut content = format!(
        "From: Alice <{SENDER}>\r\nTo: Bob <{RCPT}>\r\n\
         Date: Sun, 22 Nov 2026 07:00:00 +0000\r\n\
         Message-ID: <real-peer.chunking@sender.test>\r\n\
         Subject: large, by chunks\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=iso-8859-1\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    .into_bytes();
    let high: Vec<u8> = (0x80..=0xff).collect();
    let mut n = 0u32;
    while content.len() < 300_000 {
        match (n % 7, n % 11) {
            (_, 0) => content.push(b'.'),
            (0, _) => {
                content.extend_from_slice(format!(".{n:06} a dot first, caf\u{e9} ").as_bytes());
                content.extend_from_slice(&high[(n as usize) % 64..][..64]);
            }
            _ => {
                content.extend_from_slice(format!("{n:06} gr\u{fc}\u{df}e, caf").as_bytes());
                content.push(0xe9);
                content.extend_from_slice(&high);
            }
        }
        content.extend_from_slice(b"\r\n");
        n += 1;
    }
    content.extend_from_slice(b".\r\n");
    content
}

/// Submits `content` to the relay over BDAT (so the test stuffs nothing),
/// declared 8-bit; checked to be queued.
fn submit(relay: &Relay, content: &[u8]) {
    let (mut client, _) = Client::connect(relay.smtp);
    client.ehlo();
    let reply = client.command(&format!("MAIL FROM:<{SENDER}> BODY=8BITMIME"));
    assert!(reply.starts_with("250 "), "MAIL: {reply}");
    let reply = client.command(&format!("RCPT TO:<{RCPT}>"));
    assert!(reply.starts_with("250 "), "RCPT: {reply}");
    client.send(format!("BDAT {} LAST\r\n", content.len()).as_bytes());
    client.send(content);
    assert_queued(&client.reply());
    client.command("QUIT");
}

/// Polls `probe` until it gives a value; after [`DEADLINE`], panics
/// saying what did not happen, with Postfix's log and the relay's.
fn wait_for<T>(what: &str, postfix: &Postfix, relay: &Relay, probe: impl Fn() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {DEADLINE:?}; Postfix log:\n{}\nrelay log:\n{}",
            postfix.log(),
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `count` of `command` in a session summary (`bdat=3`, or `bdat=3/4`
/// when one failed: the first figure); 0 when absent.
fn count(session: &SessionSummary, command: &str) -> u32 {
    let prefix = format!("{command}=");
    session
        .counts
        .iter()
        .find_map(|c| c.strip_prefix(&prefix))
        .and_then(|n| n.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The summaries of the sessions that carried mail (the relay's, not the
/// harness's readiness probe), once they account for `mails` messages:
/// the relay keeps an idle connection a few seconds before its QUIT, and
/// Postfix sums a session up when it ends.
fn relay_sessions(postfix: &Postfix, relay: &Relay, mails: u32) -> Vec<SessionSummary> {
    let what = format!("Postfix summed up no sessions with {mails} mails");
    wait_for(&what, postfix, relay, || {
        let sessions: Vec<SessionSummary> = postfix
            .sessions()
            .into_iter()
            .filter(|s| s.has("mail"))
            .collect();
        let sent: u32 = sessions.iter().map(|s| count(s, "mail")).sum();
        (sent >= mails).then_some(sessions)
    })
}

/// A maildir file Postfix wrote: its `Return-Path:` and `Delivered-To:`,
/// its smtpd's `Received:`, then the relay's `Received:` (naming the
/// test's EHLO `client.test`) and, byte for byte with LF line ends (as
/// Postfix stores mail), the content submitted.
fn assert_stored(stored: &[u8], content: &[u8], log: &str) {
    let text = String::from_utf8_lossy(stored);
    let at = text
        .find("\nReceived: ")
        .unwrap_or_else(|| panic!("no Received header in what Postfix stored:\n{text}"));
    let (theirs, rest) = split_received(&stored[at + 1..]);
    assert!(
        theirs.starts_with("Received: from relay.example.test (unknown [127.0.0.1])\n")
            && theirs.contains("\tby postfix.test (Postfix) with ESMTP id "),
        "Postfix's own Received header should come first:\n{theirs}"
    );
    let (ours, rest) = split_received(rest);
    assert!(
        ours.starts_with("Received: from client.test (unknown [127.0.0.1])\n")
            && ours.contains("\tby relay.example.test (tlsrelay"),
        "the relay's Received header should follow Postfix's:\n{ours}"
    );
    let expected = lf_line_ends(content);
    if rest != expected.as_slice() {
        let same = rest
            .iter()
            .zip(&expected)
            .take_while(|(a, b)| a == b)
            .count();
        let from = same.saturating_sub(80);
        panic!(
            "Postfix stored {} bytes after the Received headers, {} expected; first \
             difference at byte {same}:\nstored:   {:?}\nexpected: {:?}\nPostfix log:\n{log}",
            rest.len(),
            expected.len(),
            String::from_utf8_lossy(&rest[from..rest.len().min(same + 80)]),
            String::from_utf8_lossy(&expected[from..expected.len().min(same + 80)]),
        );
    }
}

/// `content` with each CRLF made LF (it has no other CR or LF).
fn lf_line_ends(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    let mut bytes = content.iter().peekable();
    while let Some(&b) = bytes.next() {
        if !(b == b'\r' && bytes.peek() == Some(&&b'\n')) {
            out.push(b);
        }
    }
    out
}

/// Both messages through the relay to a Postfix started with `options`;
/// checks what Postfix stored, and returns the summaries of the relay's
/// sessions with the Postfix log.
fn deliver_both(options: PostfixOptions) -> (Vec<SessionSummary>, String) {
    let postfix = options.maildir_domains(&["example.test"]).start();
    let relay = relay_to(postfix.smtp_addr(), "opportunistic");
    let small = message("small, by chunks").into_bytes();
    let large = large_message();
    submit(&relay, &small);
    submit(&relay, &large);
    let delivered = wait_for("Postfix delivered no 2 messages", &postfix, &relay, || {
        Some(postfix.delivered_bytes()).filter(|d| d.len() >= 2)
    });
    let sessions = relay_sessions(&postfix, &relay, 2);
    let log = postfix.log();
    assert_eq!(delivered.len(), 2, "{log}");
    for (content, subject) in [(&small, "Subject: small,"), (&large, "Subject: large,")] {
        let stored = delivered
            .iter()
            .find(|m| String::from_utf8_lossy(m).contains(subject))
            .unwrap_or_else(|| panic!("no message with {subject:?} in the maildir:\n{log}"));
        assert_stored(stored, content, &log);
    }
    (sessions, log)
}

#[test]
#[ignore = "real peer: run by .ci/run"]
fn postfix_gets_our_deliveries_by_bdat_byte_for_byte() {
    let (sessions, log) = deliver_both(PostfixOptions::new());
    for session in &sessions {
        assert!(
            session.has("bdat") && !session.has("data"),
            "Postfix offers CHUNKING: the relay should send BDAT, never DATA; \
             session {:?}\nPostfix log:\n{log}",
            session.counts
        );
    }
    let chunks: u32 = sessions.iter().map(|s| count(s, "bdat")).sum();
    assert!(chunks >= 2, "at least one chunk a message: {sessions:?}");
}

#[test]
#[ignore = "real peer: run by .ci/run"]
fn postfix_without_chunking_gets_them_by_data_intact() {
    let options = PostfixOptions::new().main_cf("smtpd_discard_ehlo_keywords", "chunking");
    let (sessions, log) = deliver_both(options);
    for session in &sessions {
        assert!(
            session.has("data") && !session.has("bdat"),
            "CHUNKING is not offered: the relay should send DATA; session {:?}\n\
             Postfix log:\n{log}",
            session.counts
        );
    }
    let data: u32 = sessions.iter().map(|s| count(s, "data")).sum();
    assert_eq!(data, 2, "one DATA a message: {sessions:?}");
}
