//! Micro-benchmarks of the sans-IO hot paths (issue 8, item 3): the
//! inbound command path, the DATA and BDAT receivers, the client-side
//! dot-stuffer and the TLS decision of DESIGN.md §5. What each one
//! measures, and how to run them: benches/README.md.
//!
//! Every input is checked once before it is timed, so a benchmark cannot
//! quietly measure an error path. No figure is asserted.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use smtp_proto::Request;
use tlsrelay::config::values::TlsLevel;
use tlsrelay::config::Config;
use tlsrelay::inbound::policy::InboundPolicy;
use tlsrelay::inbound::session::{Action, Output, Session};
use tlsrelay::outbound::policy::{self, AfterEhlo, AfterFailure, AfterHandshake, Checks, Rung};
use tlsrelay::smtp::data::{BareLf, BdatReceiver, Content, DataReceiver, DataStatus};
use tlsrelay::smtp::stuff::dot_stuff;

/// One TCP segment's payload on a 1,500-byte Ethernet MTU: how content
/// usually arrives from the socket.
const MSS: usize = 1460;

/// The default `max_message_size` (35 MiB): nothing here is dropped.
const LIMIT: u64 = 35 << 20;

const SIZES: [(&str, usize); 3] = [("2KiB", 2 << 10), ("100KiB", 100 << 10), ("1MiB", 1 << 20)];

/// Recipients per pipelined transaction: one, a small list, and W5's 50.
const RECIPIENTS: [usize; 3] = [1, 10, 50];

/// An MX: mail for example.test from an internet client, the default limits.
const CONFIG: &str = "[server]\nhostname = \"mx.example.test\"\n\
    [relay]\naccepted_domains = [\"example.test\"]\n\
    [[outbound]]\nname = \"inside\"\nrecipient_domains = [\"example.test\"]\nsmarthosts = [\"192.0.2.25\"]\n";

/// A pipelined transaction (RFC 2920) up to DATA, as one read delivers it.
fn burst(recipients: usize) -> Vec<u8> {
    let mut wire = b"EHLO client.example.net\r\n\
        MAIL FROM:<alice@example.net> SIZE=2048 BODY=8BITMIME\r\n"
        .to_vec();
    for i in 0..recipients {
        let line = match i % 3 {
            0 => format!("RCPT TO:<user{i}@example.test>\r\n"),
            1 => format!("RCPT TO:<user{i}@example.test> NOTIFY=FAILURE,DELAY\r\n"),
            _ => format!(
                "RCPT TO:<user{i}@example.test> NOTIFY=NEVER ORCPT=rfc822;user{i}@example.test\r\n"
            ),
        };
        wire.extend_from_slice(line.as_bytes());
    }
    wire.extend_from_slice(b"DATA\r\n");
    wire
}

/// Message content of about `size` bytes: headers with two `Received:`
/// fields, then 74-byte lines, every 16th starting with a dot and every
/// 64th a lone dot, so the wire form has dot-stuffed lines to undo.
fn message(size: usize) -> Vec<u8> {
    let mut content = b"Received: from client.example.net ([203.0.113.7]) by mx.example.net\r\n\
        \tfor <bob@example.test>; Sun, 22 Nov 2026 07:00:00 +0000\r\n\
        Received: from laptop.example.net by client.example.net; Sun, 22 Nov 2026 06:59:58 +0000\r\n\
        From: Alice <alice@example.net>\r\nTo: Bob <bob@example.test>\r\n\
        Subject: Quarterly figures\r\nDate: Sun, 22 Nov 2026 06:59:57 +0000\r\n\
        Message-ID: <20261122065957.4242@example.net>\r\nMIME-Version: 1.0\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\r\n"
        .to_vec();
    let mut n = 0;
    while content.len() < size {
        let line = match n % 64 {
            63 => ".\r\n".to_string(),
            k if k % 16 == 15 => {
                format!(".{n:06} a leading dot the client stuffs and we remove again.\r\n")
            }
            _ => format!("{n:06} The quick brown fox jumps over the lazy dog, line by line.\r\n"),
        };
        content.extend_from_slice(line.as_bytes());
        n += 1;
    }
    content
}

fn inbound_policy() -> Arc<InboundPolicy> {
    let config = Config::parse(Path::new("bench.toml"), CONFIG.to_string())
        .unwrap_or_else(|e| panic!("bench config: {e}"));
    Arc::new(InboundPolicy::new(&config, Default::default()))
}

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

/// The command path: smtp-proto's parser line by line as
/// `inbound::commands` calls it, then the whole session (framing, parser,
/// relay rules, replies) over the same burst.
fn commands(c: &mut Criterion) {
    let policy = inbound_policy();
    let mut group = c.benchmark_group("commands");
    for n in RECIPIENTS {
        let wire = burst(n);
        let lines: Vec<&[u8]> = wire.split_inclusive(|&b| b == b'\n').collect();
        for line in &lines {
            assert!(Request::parse(&mut line.iter()).is_ok(), "{line:?}");
        }
        let run = |session: &mut Session| {
            let mut out = Output::default();
            let result = session.feed(black_box(&wire), &mut out);
            (result, out)
        };
        let ((used, action), out) = run(&mut Session::new(policy.clone(), CLIENT, None));
        let replies = String::from_utf8_lossy(&out.replies);
        assert_eq!(
            (used, action),
            (wire.len(), Action::OpenMessage),
            "{replies}"
        );
        assert_eq!(replies.matches("250 2.1.5 Ok").count(), n, "{replies}");

        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("smtp_proto_parse", n),
            &lines,
            |b, lines| {
                b.iter(|| {
                    for line in lines {
                        let _ = black_box(Request::parse(&mut black_box(*line).iter()));
                    }
                })
            },
        );
        group.bench_function(BenchmarkId::new("session_feed", n), |b| {
            b.iter_batched(
                || Session::new(policy.clone(), CLIENT, None),
                |mut session| run(&mut session),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Feeds `wire` to a fresh DATA receiver in pieces of `chunk` bytes.
fn receive(wire: &[u8], chunk: usize, out: &mut Vec<u8>) -> DataStatus {
    let mut receiver = DataReceiver::new(BareLf::Reject, LIMIT);
    out.clear();
    let mut status = DataStatus::NeedMore;
    for piece in wire.chunks(chunk) {
        status = receiver.feed(black_box(piece), out).1;
    }
    status
}

/// The DATA receiver (dot-unstuffing, strict CRLF.CRLF) and the BDAT
/// chunk receiver, whole and in segment-sized reads. The content buffer
/// is reused, as the connection driver reuses its `Output`.
fn data(c: &mut Criterion) {
    let mut group = c.benchmark_group("data");
    for (label, size) in SIZES {
        let content = message(size);
        let wire = dot_stuff(&content);
        let mut out = Vec::with_capacity(wire.len());
        for chunk in [wire.len(), MSS, 1] {
            assert_eq!(receive(&wire, chunk, &mut out), DataStatus::Complete);
            assert!(out == content, "{label}: unstuffed content differs");
        }
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(BenchmarkId::new("dot_whole", label), |b| {
            b.iter(|| receive(&wire, wire.len(), &mut out))
        });
        group.bench_function(BenchmarkId::new("dot_chunked_1460", label), |b| {
            b.iter(|| receive(&wire, MSS, &mut out))
        });
        group.throughput(Throughput::Bytes(content.len() as u64));
        for (name, chunk) in [("bdat_whole", content.len()), ("bdat_chunked_1460", MSS)] {
            group.bench_function(BenchmarkId::new(name, label), |b| {
                b.iter(|| {
                    let mut receiver = BdatReceiver::new(content.len() as u64, BareLf::Reject);
                    let mut accounting = Content::new(LIMIT);
                    out.clear();
                    let mut done = false;
                    for piece in content.chunks(chunk) {
                        done = receiver.feed(black_box(piece), &mut accounting, &mut out).1
                            == DataStatus::Complete;
                    }
                    (done, accounting.received_headers())
                })
            });
        }
    }
    group.finish();
}

/// The client side: content to the DATA wire form.
fn stuff(c: &mut Criterion) {
    let mut group = c.benchmark_group("stuff");
    for (label, size) in SIZES {
        let content = message(size);
        group.throughput(Throughput::Bytes(content.len() as u64));
        group.bench_function(BenchmarkId::new("dot_stuff", label), |b| {
            b.iter(|| dot_stuff(black_box(&content)))
        });
    }
    group.finish();
}

/// Every cell of one level's row in DESIGN.md §5, plus the ladder's
/// lower rungs: after EHLO (offered or not, and on the plaintext rung),
/// after a failed handshake (each rung, fallback on and off), after a
/// handshake (verified, bad chain, bad name, pinned).
fn row(
    level: TlsLevel,
    checks: &[Checks; 4],
) -> (Vec<AfterEhlo>, Vec<AfterFailure>, Vec<AfterHandshake>) {
    let mut ehlo = Vec::with_capacity(3);
    for offered in [false, true] {
        ehlo.push(policy::after_ehlo(level, Rung::Modern, false, offered));
    }
    ehlo.push(policy::after_ehlo(level, Rung::Plaintext, false, true));
    let mut failures = Vec::with_capacity(4);
    for rung in [Rung::Modern, Rung::Tls12] {
        for fallback in [true, false] {
            let failure = policy::Failure::Handshake("alert: handshake failure".into());
            failures.push(policy::after_failure(level, rung, fallback, &failure));
        }
    }
    let handshakes = checks
        .iter()
        .map(|check| policy::after_handshake(level, check))
        .collect();
    (ehlo, failures, handshakes)
}

fn tls_policy(c: &mut Criterion) {
    let not = |why: &str| Err(why.to_string());
    let checks = [
        Checks {
            chain: Ok(()),
            host: Ok(()),
            domain: Ok(()),
            pinned: false,
        },
        Checks {
            chain: not("self-signed"),
            host: Ok(()),
            domain: Ok(()),
            pinned: false,
        },
        Checks {
            chain: Ok(()),
            host: Ok(()),
            domain: not("certificate for mx.b.test not valid for fabrikam.test"),
            pinned: false,
        },
        Checks {
            chain: not("self-signed"),
            host: not("no match"),
            domain: not("no match"),
            pinned: true,
        },
    ];
    let levels = [
        TlsLevel::None,
        TlsLevel::Opportunistic,
        TlsLevel::Required,
        TlsLevel::VerifyCa,
        TlsLevel::VerifyHost,
        TlsLevel::VerifyDomain,
        TlsLevel::Pinned,
    ];
    let mut group = c.benchmark_group("tls_policy");
    for level in levels {
        group.bench_function(BenchmarkId::new("row", level), |b| {
            b.iter(|| row(black_box(level), black_box(&checks)))
        });
    }
    group.finish();
}

criterion_group!(benches, commands, data, stuff, tls_policy);
criterion_main!(benches);
