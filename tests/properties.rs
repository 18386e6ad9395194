//! Property tests (proptest) of the sans-IO protocol pieces: nothing here
//! binds a socket or touches the disk.
//!
//! * Dot-stuffing round trip: whatever body the spool holds, our client's
//!   `dot_stuff` output read by our server's DATA receiver gives the same
//!   bytes back, in any chunking; stuffing it in pieces, cut anywhere,
//!   gives what stuffing it whole gives.
//! * Chunking independence: a DATA stream, and a whole pipelined session
//!   (commands, DATA, BDAT), give the same message and the same replies
//!   and actions however the bytes are split into reads.
//! * One domain, every spelling (issue 12 item 3): any Unicode spelling
//!   of a restricted sender domain (case, full-width forms, U-label or
//!   A-label, dot variants, a trailing dot, ignorable characters) is
//!   refused to an anonymous client and accepted from its connector.

mod pure;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use pure::MemoryConnection;
use tlsrelay::config::Config;
use tlsrelay::inbound::policy::InboundPolicy;
use tlsrelay::smtp::data::{BareLf, DataReceiver, DataStatus};
use tlsrelay::smtp::stuff::{dot_stuff, Stuffer};

/// Bytes that matter to DATA (dots, CR, LF) often, anything else sometimes.
fn body_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => Just(b'.'),
        3 => Just(b'\r'),
        3 => Just(b'\n'),
        4 => b'a'..=b'e',
        1 => any::<u8>(),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(body_byte(), 0..300)
}

/// Increasing cut offsets within `0..=len`, from arbitrary numbers.
fn cuts(raw: &[usize], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = raw.iter().map(|c| c % (len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

/// The body as the spool holds it: every line ending CRLF (a bare CR or
/// LF becomes one), written here independently of the code under test.
fn crlf_normalised(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    let mut i = 0;
    while i < body.len() {
        match (body[i], body.get(i + 1)) {
            (b'\r', Some(b'\n')) => i += 1,
            (b'\r' | b'\n', _) => {}
            (byte, _) => {
                out.push(byte);
                i += 1;
                continue;
            }
        }
        out.extend_from_slice(b"\r\n");
        i += 1;
    }
    out
}

/// Reads `wire` through the DATA receiver in the pieces `cuts` make.
fn receive(wire: &[u8], mode: BareLf, cuts: &[usize]) -> (Vec<u8>, DataStatus, usize) {
    let mut receiver = DataReceiver::new(mode, u64::MAX);
    let mut content = Vec::new();
    let mut used = 0;
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&wire.len())) {
        let (n, status) = receiver.feed(&wire[start..end], &mut content);
        used += n;
        start = end;
        if status != DataStatus::NeedMore {
            return (content, status, used);
        }
    }
    (content, DataStatus::NeedMore, used)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A CRLF-normalised body, as spooled, comes back byte for byte.
    #[test]
    fn dot_stuffed_spool_content_comes_back_unchanged(
        body in body(),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        let mut spooled = crlf_normalised(&body);
        if !spooled.is_empty() && !spooled.ends_with(b"\r\n") {
            spooled.extend_from_slice(b"\r\n");
        }
        let wire = dot_stuff(&spooled);
        let (content, status, used) = receive(&wire, BareLf::Reject, &cuts(&raw_cuts, wire.len()));
        prop_assert_eq!(status, DataStatus::Complete);
        prop_assert_eq!(used, wire.len(), "the terminator is the last thing sent");
        prop_assert_eq!(content, spooled);
    }

    /// Any body at all, bare CR and LF included, arrives as its
    /// CRLF-normalised form, ending in CRLF.
    #[test]
    fn dot_stuffing_normalises_line_endings(body in body()) {
        let wire = dot_stuff(&body);
        let (content, status, used) = receive(&wire, BareLf::Reject, &[]);
        prop_assert_eq!(status, DataStatus::Complete);
        prop_assert_eq!(used, wire.len());
        let mut expected = crlf_normalised(&body);
        if !expected.is_empty() && !expected.ends_with(b"\r\n") {
            expected.extend_from_slice(b"\r\n");
        }
        prop_assert_eq!(content, expected);
    }

    /// Content stuffed a piece at a time, cut anywhere (a delivery reads
    /// a large message from the spool in pieces), is what stuffing it
    /// whole gives, and our server reads back its CRLF-normalised form.
    #[test]
    fn stuffing_in_pieces_is_stuffing_the_whole(
        body in body(),
        raw_cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut stuffer = Stuffer::default();
        let mut wire = Vec::new();
        let mut start = 0;
        for end in cuts(&raw_cuts, body.len()).into_iter().chain([body.len()]) {
            stuffer.stuff(&body[start..end], &mut wire);
            start = end;
        }
        stuffer.finish(&mut wire);
        prop_assert_eq!(&wire, &dot_stuff(&body));
        let (content, status, _) = receive(&wire, BareLf::Reject, &[]);
        prop_assert_eq!(status, DataStatus::Complete);
        let mut expected = crlf_normalised(&body);
        if !expected.is_empty() && !expected.ends_with(b"\r\n") {
            expected.extend_from_slice(b"\r\n");
        }
        prop_assert_eq!(content, expected);
    }

    /// Any DATA stream (terminated or not, smuggling attempts included),
    /// in either bare-LF mode, gives the same outcome in any chunking.
    #[test]
    fn data_stream_split_anywhere_gives_the_same_message(
        stream in prop::collection::vec(body_byte(), 0..300),
        normalize in any::<bool>(),
        raw_cuts in prop::collection::vec(any::<usize>(), 1..6),
    ) {
        let mode = if normalize { BareLf::Normalize } else { BareLf::Reject };
        prop_assert_eq!(
            receive(&stream, mode, &cuts(&raw_cuts, stream.len())),
            receive(&stream, mode, &[])
        );
    }
}

/// An MX for example.test, small limits so that they are reached.
const CONFIG: &str = "[server]\nhostname = \"mx.example.test\"\nmax_recipients = 3\nmax_message_size = \"200B\"\nmax_errors = 6\n\
    [tls]\ncert = \"c\"\nkey = \"k\"\n[relay]\naccepted_domains = [\"example.test\"]\n\
    [[outbound]]\nname = \"in\"\nrecipient_domains = [\"example.test\"]\nsmarthosts = [\"10.0.0.5\"]\n\
    [[inbound]]\nname = \"lan\"\nremote_ips = [\"10.0.0.0/8\"]\nallow_relay = true\n";

fn policy() -> Arc<InboundPolicy> {
    static POLICY: OnceLock<Arc<InboundPolicy>> = OnceLock::new();
    POLICY.get_or_init(|| load_policy(CONFIG)).clone()
}

/// The inbound policy of configuration `text`, which must load.
fn load_policy(text: &str) -> Arc<InboundPolicy> {
    let config = Config::parse(Path::new("properties.toml"), text.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(InboundPolicy::new(&config, Default::default()))
}

/// One client step of a pipelined session: commands, DATA with a body,
/// BDAT with its chunk, and some mistakes.
fn step() -> impl Strategy<Value = Vec<u8>> {
    let address = prop_oneof![
        Just("bob@example.test"),
        Just("x@elsewhere.test"),
        Just("x%y@example.test"),
        Just(""),
    ];
    prop_oneof![
        Just(b"EHLO client.test\r\n".to_vec()),
        Just(b"HELO client.test\r\n".to_vec()),
        Just(b"MAIL FROM:<alice@sender.test>\r\n".to_vec()),
        Just(b"MAIL FROM:<> SIZE=100\r\n".to_vec()),
        address.prop_map(|a| format!("RCPT TO:<{a}>\r\n").into_bytes()),
        prop::collection::vec(body_byte(), 0..80)
            .prop_map(|b| [&b"DATA\r\n"[..], &dot_stuff(&b)].concat()),
        (prop::collection::vec(body_byte(), 0..40), any::<bool>()).prop_map(|(chunk, last)| {
            let last = if last { " LAST" } else { "" };
            [format!("BDAT {}{last}\r\n", chunk.len()).as_bytes(), &chunk].concat()
        }),
        Just(b"RSET\r\n".to_vec()),
        Just(b"NOOP\r\n".to_vec()),
        Just(b"XYZZY\r\n".to_vec()),
        Just(b"DATA\r\nbare\n.\n".to_vec()),
        Just(format!("NOOP {}\r\n", "x".repeat(1100)).into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A pipelined command stream split into any reads gives the same
    /// replies, actions and queued messages as the stream in one read.
    #[test]
    fn session_split_anywhere_gives_the_same_replies_and_actions(
        steps in prop::collection::vec(step(), 1..10),
        lan in any::<bool>(),
        raw_cuts in prop::collection::vec(any::<usize>(), 1..8),
    ) {
        let stream = steps.concat();
        let ip = match lan {
            true => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            false => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        };
        let whole = MemoryConnection::run(policy(), ip, &stream, &[]);
        let split = MemoryConnection::run(policy(), ip, &stream, &cuts(&raw_cuts, stream.len()));
        prop_assert_eq!(split, whole);
    }
}

/// Restricted sender domains, owned by the connector for 10.0.0.0/8: one
/// written as an A-label (the case), one as a U-label, one ASCII.
const RESTRICTED: &str = "[server]\nhostname = \"mx.example.test\"\nmax_errors = 1000\n\
    [[inbound]]\nname = \"partner\"\nremote_ips = [\"10.0.0.0/8\"]\n\
    sender_domains = [\"xn--bcher-kva.test\", \"münchen.test\", \"partner.test\"]\nrestrict_sender_domains = true\n";

fn restricted_policy() -> Arc<InboundPolicy> {
    static POLICY: OnceLock<Arc<InboundPolicy>> = OnceLock::new();
    POLICY.get_or_init(|| load_policy(RESTRICTED)).clone()
}

/// The restricted domains' first labels, as U-label and as A-label
/// (`.test` follows each).
const LABELS: [(&str, &str); 3] = [
    ("bücher", "xn--bcher-kva"),
    ("münchen", "xn--mnchen-3ya"),
    ("partner", "partner"),
];

/// Spellings of one character that IDNA 2008 with the UTS #46 mapping
/// takes to the same thing, written out here from the Unicode tables
/// (not computed by the code under test): ASCII case, full-width forms
/// (U+FF01..U+FF5E are ASCII + 0xFEE0), the dots UTS #46 maps to `.`,
/// ü precomposed and decomposed.
fn variants(c: char) -> Vec<String> {
    let full = |c: char| char::from_u32(c as u32 + 0xFEE0).map(String::from);
    match c {
        '.' => vec![
            ".".into(),
            "\u{ff0e}".into(),
            "\u{3002}".into(),
            "\u{ff61}".into(),
        ],
        'ü' => vec!["ü".into(), "Ü".into(), "u\u{308}".into(), "U\u{308}".into()],
        c if c.is_ascii_alphanumeric() || c == '-' => {
            let upper = c.to_ascii_uppercase();
            [
                Some(c.to_string()),
                Some(upper.to_string()),
                full(c),
                full(upper),
            ]
            .into_iter()
            .flatten()
            .collect()
        }
        c => vec![c.to_string()],
    }
}

/// One spelling of a restricted domain: which domain, U- or A-label,
/// a variant per character, soft hyphens (U+00AD, which UTS #46 maps to
/// nothing) after some characters, and perhaps a trailing dot.
fn spelling() -> impl Strategy<Value = String> {
    (
        0..LABELS.len(),
        any::<bool>(),
        prop::collection::vec((0..4usize, prop::bool::weighted(0.1)), 24),
        prop::option::of(0..4usize),
    )
        .prop_map(|(domain, a_label, choices, trailing_dot)| {
            let (u, a) = LABELS[domain];
            let plain = format!("{}.test", if a_label { a } else { u });
            let mut out = String::new();
            for (c, (choice, soft_hyphen)) in plain.chars().zip(choices.iter().cycle()) {
                let options = variants(c);
                out.push_str(&options[choice % options.len()]);
                if *soft_hyphen {
                    out.push('\u{ad}');
                }
            }
            if let Some(dot) = trailing_dot {
                out.push_str(&variants('.')[dot]);
            }
            out
        })
}

/// The reply to `MAIL FROM:<a@domain> SMTPUTF8` from a client at `ip`.
fn mail_reply(ip: IpAddr, domain: &str) -> String {
    let input = format!("EHLO client.test\r\nMAIL FROM:<a@{domain}> SMTPUTF8\r\n");
    let transcript = MemoryConnection::run(restricted_policy(), ip, input.as_bytes(), &[]);
    let replies = String::from_utf8_lossy(&transcript.replies).into_owned();
    replies.lines().last().unwrap_or_default().to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any spelling of a restricted domain is that domain: refused to an
    /// anonymous client (the issue 12 bypass), and still accepted from
    /// the connector that owns it (so the refusal is the restriction, not
    /// a syntax error).
    #[test]
    fn every_spelling_of_a_restricted_sender_domain_is_restricted(domain in spelling()) {
        let anonymous = mail_reply(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), &domain);
        prop_assert_eq!(
            anonymous,
            "550 5.7.1 Sender domain not permitted through this connection",
            "anonymous MAIL FROM:<a@{}>", domain
        );
        let partner = mail_reply(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), &domain);
        prop_assert_eq!(partner, "250 2.1.0 Ok", "partner MAIL FROM:<a@{}>", domain);
    }
}
