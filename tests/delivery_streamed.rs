//! A large message goes from its spool file to the next hop as it is
//! read, dot-stuffed piece by piece (issue 18): what the next hop gets,
//! dot-unstuffed, is the spooled content byte for byte, with the lines
//! that start with a dot and the line ends cut by every read boundary.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::receiver::Receiver;
use tlsrelay::config::Config;
use tlsrelay::dns::Dns;
use tlsrelay::outbound::deliver::{Deliverer, Settings};
use tlsrelay::outbound::memory::TlsMemory;
use tlsrelay::outbound::memory_file::system_clock;
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

fn deliverer(dir: &std::path::Path, sink: std::net::SocketAddr) -> Deliverer<Dns> {
    let text = format!(
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"{}\"\n\
         [[outbound]]\nname = \"sink\"\nrecipient_domains = [\"example.test\"]\nsmarthosts = [\"{sink}\"]\ntls = \"none\"\n\
         [delivery]\nconnect_timeout = \"3s\"\n\
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
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(&dir.path().join("spool")).unwrap_or_else(|e| panic!("{e}"));
    let recipient = Recipient {
        address: "bob@example.test".into(),
        orcpt: None,
        notify: None,
    };
    let envelope = Envelope {
        sender: "alice@sender.test".into(),
        recipients: vec![recipient.clone()],
        ..Envelope::default()
    };
    let content = dotted_content(3 * 1024 * 1024);
    let mut writer = spool.create(&envelope);
    for piece in content.chunks(60_000) {
        writer.write(piece).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let id = writer.commit().await.unwrap_or_else(|e| panic!("{e}"));

    let (_, body) = spool.body(&id).unwrap_or_else(|e| panic!("{e}"));
    assert!(body.is_in_file(), "a message this large stays in its file");
    let deliverer = deliverer(dir.path(), receiver.addr);
    let outcomes = deliverer
        .attempt(&id, &envelope, &body, &[&recipient])
        .await;
    assert!(
        matches!(outcomes[0].verdict, Verdict::Delivered { .. }),
        "{outcomes:?}"
    );
    let delivered = receiver.wait_delivered(1);
    let got = delivered[0].data.as_deref().unwrap_or_default();
    assert_eq!(got.len(), content.len());
    let first_difference = got.iter().zip(&content).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "the content differs");
}
