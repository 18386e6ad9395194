use std::io::Write;

use super::*;
use crate::queue::envelope::Envelope;
use crate::queue::spool::Spool;

const CONTENT: &[u8] = b"Subject: x\r\nFrom: a\r\n\r\n.dotted\r\nbody\r\n";

/// `CONTENT` in a file after `junk` bytes of something else, as a body.
fn file_body(junk: usize, extra: u64) -> (tempfile::NamedTempFile, Body) {
    let mut file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    file.write_all(&vec![b'#'; junk])
        .and_then(|()| file.write_all(CONTENT))
        .unwrap_or_else(|e| panic!("{e}"));
    let open = file.reopen().unwrap_or_else(|e| panic!("{e}"));
    let body = Body::in_file(open, junk as u64, CONTENT.len() as u64 + extra);
    (file, body)
}

/// Every piece, joined; the first error ends it.
async fn joined(body: &Body, size: usize) -> io::Result<Vec<u8>> {
    let mut pieces = body.pieces(size);
    let mut out = Vec::new();
    while let Some(piece) = pieces.next().await {
        let piece = piece?;
        assert!(!piece.is_empty() && piece.len() <= size);
        out.extend_from_slice(&piece);
    }
    Ok(out)
}

#[tokio::test]
async fn memory_and_file_bodies_read_the_same() {
    let (_file, in_file) = file_body(100, 0);
    let in_memory = Body::in_memory(CONTENT.to_vec());
    for body in [&in_memory, &in_file] {
        assert_eq!(body.len(), CONTENT.len() as u64);
        assert!(!body.is_empty());
        for size in [1, 2, 7, CONTENT.len(), 1 << 20] {
            assert_eq!(joined(body, size).await.ok().as_deref(), Some(CONTENT));
        }
        let read = |offset, max| async move { body.read_at(offset, max).await.ok() };
        assert_eq!(read(3, 5).await.as_deref(), Some(&CONTENT[3..8]));
        assert_eq!(
            read(CONTENT.len() as u64 - 2, 10).await.as_deref(),
            Some(&b"\r\n"[..])
        );
        assert_eq!(
            read(CONTENT.len() as u64 + 5, 10).await.as_deref(),
            Some(&b""[..])
        );
        let head = body.head(1000).await.ok();
        assert_eq!(head.as_deref(), Some(&b"Subject: x\r\nFrom: a\r\n\r\n"[..]));
        // A header section longer than the limit: the first bytes only.
        assert_eq!(body.head(5).await.ok().as_deref(), Some(&b"Subje"[..]));
        assert_eq!(body.prefix(9).await.ok().as_deref(), Some(&CONTENT[..9]));
    }
    assert!(in_file.is_in_file() && !in_memory.is_in_file());
}

#[tokio::test]
async fn a_file_shorter_than_its_body_is_an_error_not_a_short_read() {
    let (_file, body) = file_body(10, 3);
    let error = joined(&body, 8).await.err();
    assert_eq!(error.map(|e| e.kind()), Some(io::ErrorKind::UnexpectedEof));
    // Nothing comes after the failed piece.
    let mut pieces = body.pieces(CONTENT.len() + 3);
    assert!(matches!(pieces.next().await, Some(Err(_))));
    assert!(pieces.next().await.is_none());
}

#[tokio::test]
async fn the_spool_gives_small_messages_in_memory_and_large_ones_in_their_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let envelope = Envelope {
        sender: "a@b.test".into(),
        ..Envelope::default()
    };
    let large: Vec<u8> = (0..600_000u32)
        .map(|i| b"ab.\r\n"[i as usize % 5])
        .collect();
    for (content, in_file) in [(CONTENT.to_vec(), false), (large, true)] {
        let mut writer = spool.create(&envelope);
        for piece in content.chunks(100_000) {
            writer.write(piece).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let id = writer.commit().await.unwrap_or_else(|e| panic!("{e}"));
        let (read, body) = spool.body(&id).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.sender, envelope.sender);
        assert_eq!(body.is_in_file(), in_file);
        assert_eq!(body.len(), content.len() as u64);
        assert!(joined(&body, 64 * 1024).await.ok() == Some(content));
    }
}
