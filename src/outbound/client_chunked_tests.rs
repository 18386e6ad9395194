//! BDAT against scripted servers: what the client writes, byte for byte
//! and write by write, and what it makes of the replies.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadBuf};

use super::super::{Client, Phase, Transaction, CONTENT_READ};
use crate::outbound::wire::ClientError;
use crate::queue::body::Body;
use crate::queue::envelope::{Envelope, Recipient};

/// Our end of the pipe, counting the writes that reach it.
struct Counted {
    inner: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A server that offers `ehlo`, reads each command line (and a BDAT
/// line's chunk, exactly its size), and answers with the next scripted
/// reply (`None`: answer nothing yet), then reads until the client hangs
/// up. Returns what it read, a chunk
/// shown as `<n bytes>` when `sizes_only`.
async fn server(
    theirs: DuplexStream,
    ehlo: &'static str,
    replies: Vec<Option<&'static str>>,
    sizes_only: bool,
) -> String {
    let (read, mut write) = tokio::io::split(theirs);
    let mut read = BufReader::new(read);
    let _ = write.write_all(b"220 mx.b.test ESMTP\r\n").await;
    let mut seen = String::new();
    let mut line = String::new();
    if read.read_line(&mut line).await.unwrap_or(0) > 0 {
        seen.push_str(&line);
        let _ = write.write_all(ehlo.as_bytes()).await;
    }
    for reply in replies {
        line.clear();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
        if let Some(size) = line.strip_prefix("BDAT ") {
            let size: usize = size
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let mut chunk = vec![0; size];
            if read.read_exact(&mut chunk).await.is_err() {
                break;
            }
            match sizes_only {
                true => seen.push_str(&format!("<{size} bytes>\r\n")),
                false => seen.push_str(&String::from_utf8_lossy(&chunk)),
            }
        }
        if let Some(reply) = reply {
            let _ = write.write_all(reply.as_bytes()).await;
        }
    }
    // Open until the client hangs up; anything more it sends is seen.
    let mut rest = Vec::new();
    let _ = read.read_to_end(&mut rest).await;
    seen.push_str(&String::from_utf8_lossy(&rest));
    seen
}

const EHLO: &str = "250-mx.b.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n";
const EHLO_STEPWISE: &str = "250-mx.b.test\r\n250 CHUNKING\r\n";

fn envelope(recipients: &[&str]) -> Envelope {
    Envelope {
        sender: "alice@a.test".into(),
        recipients: recipients
            .iter()
            .map(|address| Recipient {
                address: address.to_string(),
                orcpt: None,
                notify: None,
            })
            .collect(),
        ..Envelope::default()
    }
}

/// One transaction from alice@a.test to `to` with `content`.
async fn send(
    client: &mut Client<Counted>,
    to: &[&str],
    content: &Body,
) -> Result<Transaction, ClientError> {
    let envelope = envelope(to);
    let recipients: Vec<&Recipient> = envelope.recipients.iter().collect();
    client.transaction(&envelope, &recipients, content).await
}

/// A client past EHLO, and the count of its writes from then on.
async fn ready(ours: DuplexStream) -> (Client<Counted>, Arc<AtomicUsize>) {
    let writes = Arc::new(AtomicUsize::new(0));
    let counted = Counted {
        inner: ours,
        writes: writes.clone(),
    };
    let mut client = Client::new(counted);
    assert!(client.reply(Phase::Greeting).await.is_ok());
    assert!(client.hello("relay.example.test").await.is_ok());
    writes.store(0, Ordering::Relaxed);
    (client, writes)
}

#[tokio::test]
async fn a_small_message_goes_with_its_envelope_in_one_write_undotted() {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let replies = vec![
        None,
        None,
        Some("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.0.0 queued as X\r\n"),
    ];
    let server = tokio::spawn(server(theirs, EHLO, replies, false));
    let (mut client, writes) = ready(ours).await;
    assert!(client.capabilities.chunking);
    // A leading dot stays single; a bare LF and a missing last line end
    // become CRLF, as with DATA.
    let content = Body::in_memory(b"Subject: x\r\n\r\n.dot\nend".to_vec());
    let outcome = send(&mut client, &["bob@b.test"], &content).await;
    let outcome = outcome.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.data.map(|r| r.code), Some(250));
    assert_eq!(
        writes.load(Ordering::Relaxed),
        1,
        "one write: one round trip"
    );
    assert!(client.in_step());
    drop(client);
    assert_eq!(
        server.await.unwrap_or_default(),
        "EHLO relay.example.test\r\n\
         MAIL FROM:<alice@a.test>\r\n\
         RCPT TO:<bob@b.test>\r\n\
         BDAT 25 LAST\r\n\
         Subject: x\r\n\r\n.dot\r\nend\r\n"
    );
}

#[tokio::test]
async fn an_empty_message_is_one_empty_last_chunk() {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let replies = vec![None, None, Some("250 ok\r\n250 ok\r\n250 ok\r\n")];
    let server = tokio::spawn(server(theirs, EHLO, replies, false));
    let (mut client, _) = ready(ours).await;
    let outcome = send(&mut client, &["bob@b.test"], &Body::in_memory(Vec::new())).await;
    assert_eq!(outcome.ok().and_then(|t| t.data).map(|r| r.code), Some(250));
    drop(client);
    assert!(server
        .await
        .unwrap_or_default()
        .ends_with("BDAT 0 LAST\r\n"));
}

#[tokio::test]
async fn refused_recipients_with_the_chunk_sent_leave_the_client_in_step() {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let replies = vec![
        None,
        None,
        None,
        Some("250 ok\r\n550 5.1.1 no\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n"),
    ];
    let server = tokio::spawn(server(theirs, EHLO, replies, false));
    let (mut client, _) = ready(ours).await;
    let outcome = send(
        &mut client,
        &["x@b.test", "y@b.test"],
        &Body::in_memory(b"hi\r\n".to_vec()),
    )
    .await;
    let outcome = outcome.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        outcome.rcpts.iter().map(|r| r.code).collect::<Vec<_>>(),
        [550, 550]
    );
    assert!(
        outcome.data.is_none(),
        "no recipient: the chunk decides nothing"
    );
    assert!(client.in_step(), "the BDAT refusal was read");
    drop(client);
    let _ = server.await;
}

/// Content of `lines` 80-byte lines, each starting with a dot.
fn dotted(lines: usize) -> Vec<u8> {
    let line = format!(".{:-<77}\r\n", "a line that DATA would dot-stuff");
    assert_eq!(line.len(), 80);
    line.repeat(lines).into_bytes()
}

#[tokio::test]
async fn a_large_message_waits_for_its_envelope_then_goes_in_chunks() {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let content = dotted(3290);
    let len = content.len();
    let replies = vec![
        None,
        Some("250 ok\r\n250 ok\r\n"),
        Some("250 2.0.0 chunk\r\n"),
        Some("250 2.0.0 chunk\r\n"),
        Some("250 2.0.0 queued\r\n"),
    ];
    let server = tokio::spawn(server(theirs, EHLO, replies, true));
    let (mut client, writes) = ready(ours).await;
    let outcome = send(&mut client, &["bob@b.test"], &Body::in_memory(content)).await;
    assert_eq!(outcome.ok().and_then(|t| t.data).map(|r| r.code), Some(250));
    assert!(writes.load(Ordering::Relaxed) > 1);
    drop(client);
    // Whole lines, no reads cut between a CR and its LF: the chunks are
    // the reads.
    let tail = len - 2 * CONTENT_READ;
    assert_eq!(
        server.await.unwrap_or_default(),
        format!(
            "EHLO relay.example.test\r\n\
             MAIL FROM:<alice@a.test>\r\n\
             RCPT TO:<bob@b.test>\r\n\
             BDAT {CONTENT_READ}\r\n<{CONTENT_READ} bytes>\r\n\
             BDAT {CONTENT_READ}\r\n<{CONTENT_READ} bytes>\r\n\
             BDAT {tail} LAST\r\n<{tail} bytes>\r\n"
        )
    );
}

#[tokio::test]
async fn a_refused_chunk_ends_the_sending_and_decides() {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let replies = vec![
        Some("250 ok\r\n"),
        Some("250 ok\r\n"),
        Some("552 5.3.4 message too big\r\n"),
    ];
    let server = tokio::spawn(server(theirs, EHLO_STEPWISE, replies, true));
    let (mut client, _) = ready(ours).await;
    let content = Body::in_memory(dotted(5000));
    let outcome = send(&mut client, &["bob@b.test"], &content).await;
    assert_eq!(outcome.ok().and_then(|t| t.data).map(|r| r.code), Some(552));
    drop(client);
    let seen = server.await.unwrap_or_default();
    assert_eq!(seen.matches("BDAT").count(), 1, "{seen}");
}

#[tokio::test]
async fn a_354_to_bdat_is_a_server_out_of_step() {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let replies = vec![None, None, Some("250 ok\r\n250 ok\r\n354 go ahead\r\n")];
    let server = tokio::spawn(server(theirs, EHLO, replies, false));
    let (mut client, _) = ready(ours).await;
    let outcome = send(
        &mut client,
        &["bob@b.test"],
        &Body::in_memory(b"hi\r\n".to_vec()),
    )
    .await;
    match outcome {
        Err(ClientError::Protocol(Phase::DataEnd, text)) => assert!(text.contains("354"), "{text}"),
        other => panic!("{:?}", other.map(|t| t.data)),
    }
    drop(client);
    let _ = server.await;
}

#[tokio::test]
async fn content_that_cannot_be_read_never_gets_its_last_chunk() {
    use std::io::Write;
    // The file holds 300 KiB; the body says 400: the read past the end fails.
    let mut file = tempfile::tempfile().unwrap_or_else(|e| panic!("{e}"));
    let lines = dotted(300 * 1024 / 80);
    file.write_all(&lines).unwrap_or_else(|e| panic!("{e}"));
    let truncated = Body::in_file(file, 0, 400 * 1024);
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let replies = vec![None, Some("250 ok\r\n250 ok\r\n"), Some("250 chunk\r\n")];
    let server = tokio::spawn(server(theirs, EHLO, replies, true));
    let (mut client, _) = ready(ours).await;
    let error = send(&mut client, &["bob@b.test"], &truncated).await;
    assert!(
        matches!(error, Err(ClientError::Content(_))),
        "{:?}",
        error.map(|t| t.data)
    );
    drop(client);
    let seen = server.await.unwrap_or_default();
    assert!(seen.contains("BDAT 131072\r\n"), "{seen}");
    assert!(!seen.contains("LAST"), "the content must not end: {seen}");
}

/// A message delivered on a kept connection, then the same message
/// again behind its RSET, the server answering the second batch with
/// `then`; the second outcome, how long it took, and what the server read.
async fn kept_then(then: &'static str) -> (Result<Transaction, ClientError>, Duration, String) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let replies = vec![
        None,
        None,
        Some("250 ok\r\n250 ok\r\n250 queued as 1\r\n"),
        None,
        None,
        None,
        Some(then),
    ];
    let server = tokio::spawn(server(theirs, EHLO, replies, false));
    let (mut client, _) = ready(ours).await;
    let content = Body::in_memory(b"hi\r\n".to_vec());
    let first = send(&mut client, &["bob@b.test"], &content).await;
    assert_eq!(first.ok().and_then(|t| t.data).map(|r| r.code), Some(250));
    assert!(client.ready_for_next().await);
    // A reply that never comes would take 3 s, not 5 min.
    client.timeout_scale = 0.01;
    let started = Instant::now();
    let second = send(&mut client, &["bob@b.test"], &content).await;
    let took = started.elapsed();
    drop(client);
    (second, took, server.await.unwrap_or_default())
}

#[tokio::test]
async fn a_refused_rset_in_front_of_a_whole_message_does_not_hide_its_delivery() {
    let then = "502 5.5.1 RSET not implemented\r\n250 ok\r\n250 ok\r\n250 queued as 2\r\n";
    let (second, _, seen) = kept_then(then).await;
    let second = second.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        second.data.map(|r| r.summary()),
        Some("250 queued as 2".to_string()),
        "the message was taken: not to be sent again"
    );
    assert_eq!(seen.matches("RSET").count(), 1, "{seen}");
}

#[tokio::test]
async fn a_421_to_the_rset_in_front_is_a_stale_kept_connection() {
    let (second, took, _) = kept_then("421 4.4.2 idle too long, closing\r\n").await;
    let phase = second.map(|t| t.data).map_err(|e| e.phase());
    assert_eq!(phase.err(), Some(Phase::Rset), "a new connection is tried");
    assert!(
        took < Duration::from_secs(2),
        "at once, not after a timeout"
    );
}
