//! The whole inbound session (src/inbound/session.rs, commands.rs and the
//! DATA/BDAT receivers under it), driven in memory as the connection
//! driver drives it (tests/pure/mod.rs). The first input byte picks the
//! client (anonymous, a relaying LAN host, or one that must use TLS) and
//! the `bare_lf` mode. Asserts, for any byte stream from a client:
//!
//! * the same replies, actions and queued messages whether the stream
//!   arrives whole, split at an arbitrary point, or byte by byte;
//! * the driver's contract: content only with a message open, Commit only
//!   after OpenMessage, OpenMessage only with an envelope (the driver
//!   acts on what `message_opened` returns: `BDAT 0 LAST`, found here);
//! * every reply line is `NNN SP`/`NNN -` text CRLF with a 2xx–5xx code;
//! * an anonymous client never gets mail queued for a domain that is not
//!   accepted, nor with `%`, `!` or `@` in a local part (never an open relay);
//! * nothing is queued from a client that must use TLS (it never gets TLS here).
#![no_main]

#[path = "common.rs"]
mod common;
#[path = "../../tests/pure/mod.rs"]
mod pure;

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use pure::{MemoryConnection, Transcript};
use tlsrelay::config::Config;
use tlsrelay::inbound::policy::InboundPolicy;

/// An MX for example.test with small limits, STARTTLS offered.
const CONFIG: &str = "[server]\nhostname = \"mx.example.test\"\nmax_recipients = 3\nmax_message_size = \"1KiB\"\nmax_hops = 2\nmax_errors = 5\n\
    [tls]\ncert = \"c\"\nkey = \"k\"\n[relay]\naccepted_domains = [\"example.test\"]\n\
    [[outbound]]\nname = \"in\"\nrecipient_domains = [\"example.test\"]\nsmarthosts = [\"10.0.0.5\"]\n\
    [[inbound]]\nname = \"lan\"\nremote_ips = [\"10.0.0.0/8\"]\nallow_relay = true\n\
    [[inbound]]\nname = \"secure\"\nremote_ips = [\"10.9.0.0/16\"]\nrequire_tls = true\nallow_relay = true\n";

fn policies() -> &'static [Arc<InboundPolicy>; 2] {
    static POLICIES: OnceLock<[Arc<InboundPolicy>; 2]> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let load = |text: String| {
            let config = Config::parse(Path::new("fuzz.toml"), text)
                .unwrap_or_else(|e| panic!("fuzz config: {e}"));
            Arc::new(InboundPolicy::new(&config, Default::default()))
        };
        let normalize = CONFIG.replace("[tls]", "bare_lf = \"normalize\"\n[tls]");
        [load(CONFIG.to_string()), load(normalize)]
    })
}

const CLIENTS: [&str; 3] = ["192.0.2.1", "10.0.0.1", "10.9.1.1"];

fn check_replies(replies: &[u8]) {
    for line in replies.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "reply line {line:?}");
        assert!(line.len() >= 6, "reply line {line:?}");
        assert!((b'2'..=b'5').contains(&line[0]), "reply line {line:?}");
        assert!(
            line[1..3].iter().all(u8::is_ascii_digit),
            "reply line {line:?}"
        );
        assert!(line[3] == b' ' || line[3] == b'-', "reply line {line:?}");
        assert!(
            !line[..line.len() - 2].contains(&b'\r'),
            "reply line {line:?}"
        );
    }
}

fn check_relay(transcript: &Transcript) {
    for (envelope, _) in &transcript.queued {
        for recipient in &envelope.recipients {
            let (local, domain) = recipient
                .address
                .rsplit_once('@')
                .unwrap_or_else(|| panic!("queued for {:?}", recipient.address));
            let domain = domain
                .strip_suffix('.')
                .unwrap_or(domain)
                .to_ascii_lowercase();
            assert_eq!(
                domain, "example.test",
                "open relay to {:?}",
                recipient.address
            );
            assert!(
                !local.contains(['%', '!', '@']),
                "relay trick {:?}",
                recipient.address
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, split, input)) = common::header(data) else {
        return;
    };
    let client = usize::from(selector % 3);
    let policy = &policies()[usize::from(selector / 3 % 2)];
    let ip: IpAddr = CLIENTS[client].parse().unwrap_or_else(|e| panic!("{e}"));

    let whole = MemoryConnection::run(policy.clone(), ip, input, &[]);
    let halves = MemoryConnection::run(policy.clone(), ip, input, &[split]);
    assert_eq!(halves, whole, "split at {split}");
    let bytes = common::every_byte(input.len());
    if !bytes.is_empty() {
        let drip = MemoryConnection::run(policy.clone(), ip, input, &bytes);
        assert_eq!(drip, whole, "byte by byte");
    }

    check_replies(&whole.replies);
    match client {
        0 => check_relay(&whole),
        2 => assert!(whole.queued.is_empty(), "queued without TLS"),
        _ => {}
    }
});
