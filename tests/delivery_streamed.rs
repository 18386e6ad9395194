//! A large message goes from its spool file to the next hop as it is
//! read, dot-stuffed piece by piece (issue 18), or by BDAT a chunk per
//! piece where the next hop offers CHUNKING: what the next hop gets
//! (dot-unstuffed, or the chunks joined) is the spooled content byte for
//! byte, with the lines that start with a dot and the line ends cut by
//! every read boundary.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::receiver::Receiver;
use tlsrelay::config::Config;
use tlsrelay::dns::Dns;
use tlsrelay::outbound::deliver::{Deliverer, Settings};
use tlsrelay::outbound::memory::TlsMemory;
use tlsrelay::outbound::memory_file::system_clock;
use tlsrelay::queue::body::Body;
use tlsrelay::queue::delivery::Verdict;
use tlsrelay::queue::envelope::{Envelope, Recipient};
use tlsrelay::queue::spool::Spool;

/// Every read boundary a delivery may use is a multiple of this.
const BOUNDARY: usize = 16 * 1024;

/// About `size` bytes of CRLF lines whose every `BOUNDARY` multiple
/// falls at a place that matters to stuffing, in turn: between the CR and
/// the LF before a dotted line, just before a dotted line, after the dot
/// of a `..` line, after the dot of a lone `.` line (the end marker,
/// were it not stuffed).
fn dotted_content(size: usize) -> Vec<u8> {
    let mut content = b"From: alice@sender.test\r\nSubject: large\r\n\r\n".to_vec();
    let cases: [(&[u8], usize); 4] = [
        (b"x\r\n.a\r\n", 2),
        (b"x\r\n.b\r\n", 3),
        (b"x\r\n..\r\n", 4),
        (b"x\r\n.\r\n", 4),
    ];
    let mut boundary = BOUNDARY;
    let mut case = 0;
    while content.len() < size {
        let (pattern, cut) = cases[case % cases.len()];
        let Some(mut gap) = (boundary - cut)
            .checked_sub(content.len())
            .filter(|&g| g >= 3)
        else {
            boundary += BOUNDARY;
            continue;
        };
        // Filler lines of at most 80 bytes, the last one exactly to fit.
        while gap > 0 {
            let line = if gap > 83 { 80 } else { gap };
            content.extend(std::iter::repeat_n(b'y', line - 2));
            content.extend_from_slice(b"\r\n");
            gap -= line;
        }
        content.extend_from_slice(pattern);
        boundary += BOUNDARY;
        case += 1;
    }
    content
}

/// A deliverer to `sink`; `delivery`: more `[delivery]` keys.
fn deliverer(dir: &std::path::Path, sink: std::net::SocketAddr, delivery: &str) -> Deliverer<Dns> {
    let text = format!(
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"{}\"\n\
         [[outbound]]\nname = \"sink\"\nrecipient_domains = [\"example.test\"]\nsmarthosts = [\"{sink}\"]\ntls = \"none\"\n\
         [delivery]\nconnect_timeout = \"3s\"\n{delivery}\n\
         [dns]\nnameservers = [\"127.0.0.1:1\"]\n",
        dir.join("spool").display(),
    );
    let config = Config::parse(&dir.join("relay.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    let dns = Dns::new(&config.dns).expect("dns");
    let settings = Settings::new(&config, dns, None).expect("settings");
    let memory = TlsMemory::reader(dir, Duration::from_secs(3600), system_clock());
    Deliverer::with_settings(settings, Arc::new(memory))
}

#[tokio::test]
async fn a_large_message_is_streamed_from_its_file_byte_for_byte() {
    let receiver = Receiver::start("127.0.0.1:0".parse().expect("address"));
    streams_byte_for_byte(&receiver, "", false).await;
}

#[tokio::test]
async fn by_bdat_a_large_message_is_streamed_in_chunks_byte_for_byte() {
    let receiver = Receiver::start("127.0.0.1:0".parse().expect("address"));
    receiver.offer_chunking();
    streams_byte_for_byte(&receiver, "", true).await;
}

#[tokio::test]
async fn chunking_off_sends_data_to_a_next_hop_that_offers_it() {
    let receiver = Receiver::start("127.0.0.1:0".parse().expect("address"));
    receiver.offer_chunking();
    streams_byte_for_byte(&receiver, "chunking = false", false).await;
}

/// One attempt of the message, which the next hop must take.
async fn assert_delivered(deliverer: &Deliverer<Dns>, id: &str, envelope: &Envelope, body: &Body) {
    let recipients: Vec<&Recipient> = envelope.recipients.iter().collect();
    let outcomes = deliverer.attempt(id, envelope, body, &recipients).await;
    assert!(
        matches!(outcomes[0].verdict, Verdict::Delivered { .. }),
        "{outcomes:?}"
    );
}

/// An envelope with one recipient.
fn bob() -> Envelope {
    Envelope {
        sender: "alice@sender.test".into(),
        recipients: vec![Recipient {
            address: "bob@example.test".into(),
            orcpt: None,
            notify: None,
        }],
        ..Envelope::default()
    }
}

/// A 3 MB message from its spool file to `receiver`, with `delivery`
/// keys: it arrives whole, by BDAT when `bdat`, else by DATA.
async fn streams_byte_for_byte(receiver: &Receiver, delivery: &str, bdat: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(&dir.path().join("spool")).unwrap_or_else(|e| panic!("{e}"));
    let envelope = bob();
    let content = dotted_content(3 * 1024 * 1024);
    let mut writer = spool.create(&envelope);
    for piece in content.chunks(60_000) {
        writer.write(piece).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let id = writer.commit().await.unwrap_or_else(|e| panic!("{e}"));

    let (_, body) = spool.body(&id).unwrap_or_else(|e| panic!("{e}"));
    assert!(body.is_in_file(), "a message this large stays in its file");
    let deliverer = deliverer(dir.path(), receiver.addr, delivery);
    assert_delivered(&deliverer, &id, &envelope, &body).await;
    let delivered = receiver.wait_delivered(1);
    assert_eq!(delivered[0].bdat, bdat, "BDAT used: {}", delivered[0].bdat);
    let got = delivered[0].data.as_deref().unwrap_or_default();
    assert_eq!(got.len(), content.len());
    let first_difference = got.iter().zip(&content).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "the content differs");
}

#[tokio::test]
async fn by_bdat_a_kept_connection_carries_the_next_message_behind_its_rset() {
    let receiver = Receiver::start("127.0.0.1:0".parse().expect("address"));
    receiver.offer_chunking();
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(&dir.path().join("spool")).unwrap_or_else(|e| panic!("{e}"));
    let envelope = bob();
    let deliverer = deliverer(dir.path(), receiver.addr, "");
    let mut sent = Vec::new();
    for n in 0..2 {
        let content = format!("Subject: {n}\r\n\r\n.a dotted line\r\n").into_bytes();
        let mut writer = spool.create(&envelope);
        writer
            .write(&content)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let id = writer.commit().await.unwrap_or_else(|e| panic!("{e}"));
        let (_, body) = spool.body(&id).unwrap_or_else(|e| panic!("{e}"));
        assert_delivered(&deliverer, &id, &envelope, &body).await;
        sent.push(content);
    }
    let delivered = receiver.wait_delivered(2);
    for (transaction, content) in delivered.iter().zip(&sent) {
        assert!(transaction.bdat, "{transaction:?}");
        assert_eq!(transaction.connection, 0, "one kept connection");
        assert_eq!(transaction.data.as_deref(), Some(&content[..]));
    }
}
