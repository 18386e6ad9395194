//! SMTP smuggling (CVE-2023-51764 and kin): an end-of-data look-alike
//! inside DATA, followed by a whole second transaction, must never make
//! a second message, whatever `bare_lf` says.

mod support;

use support::relay::{recipients, Relay};
use support::smtp::Client;
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
            assert_eq!(
                reply,
                "521 5.5.2 Bare LF or CR in message content violates RFC 5321 §2.3.8; closing\r\n",
                "{what}"
            );
            assert!(c.closed(), "{what}: still open after 521");
            assert_eq!(relay.spooled().len(), before, "{what}: {}", relay.log());
        } else {
            assert!(
                reply.starts_with("250 2.0.0 Ok: queued as "),
                "{what}: {reply}"
            );
            assert_eq!(c.command("QUIT"), "221 2.0.0 Bye\r\n", "{what}");
            one_more_message(&relay, before, &what);
        }
    }
    // Only the NUL sequence has no bare CR or LF, so one message in all.
    assert_eq!(relay.spooled().len(), 1);
}

#[test]
fn normalize_mode_keeps_the_second_transaction_as_text_of_one_message() {
    let relay = Relay::start_server("bare_lf = \"normalize\"", "");
    for sequence in SEQUENCES {
        let what = format!("{:?}", String::from_utf8_lossy(sequence));
        let before = relay.spooled().len();
        let (mut c, reply) = try_to_smuggle(&relay, sequence);
        assert!(
            reply.starts_with("250 2.0.0 Ok: queued as "),
            "{what}: {reply}"
        );
        // Exactly one reply for the whole payload: the next is QUIT's.
        assert_eq!(c.command("QUIT"), "221 2.0.0 Bye\r\n", "{what}");
        let body = one_more_message(&relay, before, &what);
        assert!(
            !has_bare_line_ending(&body),
            "{what}: not normalised: {:?}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(relay.spooled().len(), SEQUENCES.len());
}
