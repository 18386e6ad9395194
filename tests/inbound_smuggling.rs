//! SMTP smuggling (CVE-2023-51764 and kin): an end-of-data look-alike
//! inside DATA, followed by a whole second transaction, must never make
//! a second message, whatever `bare_lf` says. And the content rules
//! behind it, the same for DATA and BDAT: bare LF or CR per `bare_lf`,
//! no NUL.

mod support;

use support::relay::{recipients, Relay};
use support::smtp::{assert_queued, Client};
use support::split_received;

/// The look-alikes, each placed between a first line of content and the
/// would-be second transaction.
const SEQUENCES: [&[u8]; 10] = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r",
    b"\r.\n",
    b"\n.\r",
    b"\r\n.\n",
    b"\r\n.\r",
    b"\r\n\0.\r\n",
    b"\r\n.\r\r\n",
    b"\r\r\n.\r\r\n",
];

const SECOND: &[u8] = b"MAIL FROM:<mallory@sender.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsecond\r\n.\r\n";

/// What one client sends after the `354`: content with the look-alike
/// `sequence`, the second transaction, and the only real end marker.
fn payload(sequence: &[u8]) -> Vec<u8> {
    let mut bytes = b"Subject: first\r\n\r\nfirst".to_vec();
    bytes.extend_from_slice(sequence);
    bytes.extend_from_slice(SECOND);
    bytes
}

/// True when `bytes` hold a LF without a CR before it, or a CR without a LF after it.
fn has_bare_line_ending(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| match b {
        b'\n' => i == 0 || bytes[i - 1] != b'\r',
        b'\r' => bytes.get(i + 1) != Some(&b'\n'),
        _ => false,
    })
}

/// One session that tries `sequence`; the reply to the content.
fn try_to_smuggle(relay: &Relay, sequence: &[u8]) -> (Client, String) {
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    c.start_data("alice@sender.test", &["bob@example.test"]);
    c.send(&payload(sequence));
    let reply = c.reply();
    (c, reply)
}

/// The message the last session spooled, if exactly one more is there.
fn one_more_message(relay: &Relay, before: usize, what: &str) -> Vec<u8> {
    let spooled = relay.expect_spooled(before + 1);
    let (_, envelope, content) = spooled.last().cloned().expect("a message");
    assert_eq!(envelope.sender, "alice@sender.test", "{what}");
    assert_eq!(recipients(&envelope), ["bob@example.test"], "{what}");
    let (_, body) = split_received(&content);
    let text = String::from_utf8_lossy(body);
    assert!(
        text.starts_with("Subject: first\r\n\r\nfirst"),
        "{what}: {text:?}"
    );
    assert!(
        text.contains("MAIL FROM:<mallory@sender.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsecond\r\n"),
        "{what}: the second transaction is not text in the first message: {text:?}"
    );
    body.to_vec()
}

#[test]
fn reject_mode_closes_on_bare_line_endings_and_never_spools_a_second_message() {
    let relay = Relay::start_server("bare_lf = \"reject\"", "");
    for sequence in SEQUENCES {
        let what = format!("{:?}", String::from_utf8_lossy(sequence));
        let before = relay.spooled().len();
        let (mut c, reply) = try_to_smuggle(&relay, sequence);
        if has_bare_line_ending(&payload(sequence)) {
            assert_eq!(reply, BARE, "{what}");
            assert!(c.closed(), "{what}: still open after 521");
        } else {
            // Only the NUL sequence has no bare CR or LF: refused for the NUL.
            assert_eq!(reply, NUL, "{what}");
            assert_eq!(c.command("QUIT"), "221 2.0.0 Bye\r\n", "{what}");
        }
        assert_eq!(relay.spooled().len(), before, "{what}: {}", relay.log());
    }
    assert_eq!(relay.spooled().len(), 0);
}

#[test]
fn normalize_mode_keeps_the_second_transaction_as_text_of_one_message() {
    let relay = Relay::start_server("bare_lf = \"normalize\"", "");
    for sequence in SEQUENCES {
        let what = format!("{:?}", String::from_utf8_lossy(sequence));
        let before = relay.spooled().len();
        let (mut c, reply) = try_to_smuggle(&relay, sequence);
        // Exactly one reply for the whole payload: the next is QUIT's.
        let quit = c.command("QUIT");
        assert_eq!(quit, "221 2.0.0 Bye\r\n", "{what}");
        if sequence.contains(&0) {
            assert_eq!(reply, NUL, "{what}");
            continue;
        }
        assert!(
            reply.starts_with("250 2.0.0 Ok: queued as "),
            "{what}: {reply}"
        );
        let body = one_more_message(&relay, before, &what);
        assert!(
            !has_bare_line_ending(&body),
            "{what}: not normalised: {:?}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(relay.spooled().len(), SEQUENCES.len() - 1);
}

const BARE: &str =
    "521 5.5.2 Bare LF or CR in message content violates RFC 5321 §2.3.8; closing\r\n";
const NUL: &str = "554 5.6.0 NUL character in message content is not allowed\r\n";

/// A BDAT message whose chunks hold a bare LF, a bare CR, and a CRLF
/// straddling two chunks (which is a line end, not bare).
const CHUNKS: [&[u8]; 3] = [
    b"Subject: bdat\r\n\r\none\ntwo\r",
    b"\nthree\rfour\r\n",
    b"",
];

/// Sends [`CHUNKS`] as BDAT, the last `LAST`, pipelined; the replies.
fn send_chunks(c: &mut Client) -> Vec<String> {
    let mut wire = Vec::new();
    for (i, chunk) in CHUNKS.iter().enumerate() {
        let last = if i + 1 == CHUNKS.len() { " LAST" } else { "" };
        wire.extend_from_slice(format!("BDAT {}{last}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
    }
    c.send(&wire);
    let mut replies = Vec::new();
    loop {
        let reply = c.reply();
        let done = reply.is_empty() || !reply.contains("octets received");
        replies.push(reply);
        if done || replies.len() == CHUNKS.len() {
            return replies;
        }
    }
}

#[test]
fn bdat_content_with_a_bare_lf_is_refused_like_data_when_rejecting() {
    let relay = Relay::start_server("bare_lf = \"reject\"", "");
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    c.envelope("alice@sender.test", &["bob@example.test"]);
    assert_eq!(send_chunks(&mut c), [BARE]);
    assert!(c.closed(), "still open after 521");
    relay.wait_for_log("session closed", 1);
    assert_eq!(relay.spool_files(), Vec::<String>::new(), "{}", relay.log());
}

#[test]
fn bdat_content_is_normalised_like_data_when_normalizing() {
    let relay = Relay::start_server("bare_lf = \"normalize\"", "");
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    c.envelope("alice@sender.test", &["bob@example.test"]);
    let replies = send_chunks(&mut c);
    assert_eq!(
        replies[..2],
        [
            "250 2.0.0 25 octets received\r\n",
            "250 2.0.0 13 octets received\r\n"
        ]
    );
    assert!(
        replies[2].starts_with("250 2.0.0 Ok: queued as "),
        "{replies:?}"
    );
    let spooled = relay.expect_spooled(1);
    let (_, body) = split_received(&spooled[0].2);
    assert_eq!(
        String::from_utf8_lossy(body),
        "Subject: bdat\r\n\r\none\r\ntwo\r\nthree\r\nfour\r\n"
    );
}

#[test]
fn a_nul_in_content_is_refused_in_data_and_bdat_and_the_session_goes_on() {
    for mode in ["reject", "normalize"] {
        let relay = Relay::start_server(&format!("bare_lf = \"{mode}\""), "");
        let (mut c, _) = Client::connect(relay.smtp);
        c.ehlo();
        let reply = c.deliver(
            "alice@sender.test",
            &["bob@example.test"],
            "Subject: nul\r\n\r\na\0b\r\n",
        );
        assert_eq!(reply, NUL, "{mode}: DATA");
        c.envelope("alice@sender.test", &["bob@example.test"]);
        c.send(b"BDAT 5\r\nx\0y\r\n");
        assert_eq!(c.reply(), "250 2.0.0 5 octets received\r\n");
        assert_eq!(c.command("BDAT 0 LAST"), NUL, "{mode}: BDAT");
        // Refused, not closed: the next message goes through.
        assert_queued(&c.deliver(
            "alice@sender.test",
            &["bob@example.test"],
            "Subject: ok\r\n\r\nfine\r\n",
        ));
        assert_eq!(c.command("QUIT"), "221 2.0.0 Bye\r\n");
        let spooled = relay.expect_spooled(1);
        assert!(!spooled[0].2.contains(&0), "{mode}");
    }
}
