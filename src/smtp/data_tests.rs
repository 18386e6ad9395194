use super::*;

/// Feeds `input` in pieces of `chunk` bytes; returns content, status, consumed.
fn run(input: &[u8], bare_lf: BareLf, limit: u64, chunk: usize) -> (Vec<u8>, DataStatus, usize) {
    let mut receiver = DataReceiver::new(bare_lf, limit);
    let mut out = Vec::new();
    let mut consumed = 0;
    for piece in input.chunks(chunk.max(1)) {
        let (used, status) = receiver.feed(piece, &mut out);
        consumed += used;
        if status != DataStatus::NeedMore {
            return (out, status, consumed);
        }
    }
    (out, DataStatus::NeedMore, consumed)
}

/// Every split of the input gives the same outcome.
fn all_chunkings(input: &[u8], bare_lf: BareLf) -> (Vec<u8>, DataStatus, usize) {
    let whole = run(input, bare_lf, u64::MAX, input.len());
    for chunk in 1..input.len() {
        assert_eq!(
            run(input, bare_lf, u64::MAX, chunk),
            whole,
            "chunk size {chunk}"
        );
    }
    // Every two-piece split too.
    for split in 0..input.len() {
        let mut receiver = DataReceiver::new(bare_lf, u64::MAX);
        let mut out = Vec::new();
        let (a, status) = receiver.feed(&input[..split], &mut out);
        let result = if status != DataStatus::NeedMore {
            (out, status, a)
        } else {
            let (b, status) = receiver.feed(&input[split..], &mut out);
            (out, status, a + b)
        };
        assert_eq!(result, whole, "split at {split}");
    }
    whole
}

#[test]
fn empty_message_ends_at_once() {
    for mode in [BareLf::Reject, BareLf::Normalize] {
        assert_eq!(
            all_chunkings(b".\r\nMAIL", mode),
            (vec![], DataStatus::Complete, 3)
        );
    }
}

#[test]
fn unstuffs_and_ends_at_crlf_dot_crlf() {
    let input = b"Subject: x\r\n\r\n..leading dot\r\n.\r\n..\r\nlast\r\n.\r\nQUIT\r\n";
    let (out, status, consumed) = all_chunkings(input, BareLf::Reject);
    // "\r\n.\r\n" after "..leading dot" is the end; what follows is the next command.
    assert_eq!(out, b"Subject: x\r\n\r\n.leading dot\r\n");
    assert_eq!(status, DataStatus::Complete);
    assert_eq!(&input[consumed..], b"..\r\nlast\r\n.\r\nQUIT\r\n");
}

/// The smuggling sequences of the inbound acceptance list: none of them
/// ends the data, in either mode.
const SMUGGLING: [&[u8]; 10] = [
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

#[test]
fn smuggling_sequences_never_end_data_when_normalizing() {
    for seq in SMUGGLING {
        let mut input = b"Subject: a".to_vec();
        input.extend_from_slice(seq);
        input.extend_from_slice(b"MAIL FROM:<x@y>\r\nRCPT TO:<a@b>\r\nDATA\r\nsmuggled\r\n.\r\n");
        let (out, status, consumed) = all_chunkings(&input, BareLf::Normalize);
        assert_eq!(status, DataStatus::Complete, "{seq:?}");
        assert_eq!(consumed, input.len(), "{seq:?}: ended early");
        assert!(out.ends_with(b"smuggled\r\n"), "{seq:?}");
        // Normalised content has no bare CR or LF left.
        for (i, &b) in out.iter().enumerate() {
            if b == b'\n' {
                assert_eq!(
                    out.get(i.wrapping_sub(1)),
                    Some(&b'\r'),
                    "{seq:?}: bare LF in {out:?}"
                );
            }
            if b == b'\r' {
                assert_eq!(out.get(i + 1), Some(&b'\n'), "{seq:?}: bare CR in {out:?}");
            }
        }
    }
}

#[test]
fn smuggling_sequences_stop_the_receiver_when_rejecting() {
    for seq in SMUGGLING {
        let mut input = b"Subject: a".to_vec();
        input.extend_from_slice(seq);
        input.extend_from_slice(b"MAIL FROM:<x@y>\r\n.\r\n");
        let (_, status, _) = all_chunkings(&input, BareLf::Reject);
        // "\r\n\0.\r\n" has no bare line ending: the NUL is content, and the
        // dot is not at a line start, so it does not end the data either.
        let expected = if seq == b"\r\n\0.\r\n" {
            DataStatus::Complete
        } else {
            DataStatus::BareLineEnding
        };
        assert_eq!(status, expected, "{seq:?}");
        if expected == DataStatus::Complete {
            let (out, _, consumed) = all_chunkings(&input, BareLf::Reject);
            assert_eq!(consumed, input.len());
            assert!(out.starts_with(b"Subject: a\r\n\0.\r\nMAIL"), "{out:?}");
        }
    }
}

#[test]
fn size_limit_counts_everything_and_keeps_memory_bounded() {
    let mut input = b"x".repeat(10_000);
    input.extend_from_slice(b"\r\n.\r\n");
    let mut receiver = DataReceiver::new(BareLf::Reject, 1000);
    let mut out = Vec::new();
    let (_, status) = receiver.feed(&input, &mut out);
    assert_eq!(status, DataStatus::Complete);
    assert!(receiver.content.too_large());
    assert_eq!(receiver.content.size(), 10_002);
    assert!(out.len() <= 1000);
}

/// Found by the `data` fuzz target once line content went in as runs: a
/// run crossing the limit kept nothing of itself, so the content kept
/// depended on how the input was cut. It is the bytes up to the limit.
#[test]
fn content_up_to_the_limit_is_kept_however_the_input_is_cut() {
    let input = b"Received: from a\r\nSubject: a long subject line\r\n\r\nbody\r\n.\r\n";
    let whole = run(input, BareLf::Reject, 20, input.len());
    assert_eq!(whole.0, b"Received: from a\r\nSu");
    for chunk in 1..input.len() {
        assert_eq!(
            run(input, BareLf::Reject, 20, chunk),
            whole,
            "chunk size {chunk}"
        );
    }
    // A CRLF across the limit is kept whole or not at all: never a bare CR.
    let cut = run(input, BareLf::Reject, 17, input.len());
    assert_eq!(cut.0, b"Received: from a");
}

#[test]
fn counts_received_headers_in_the_header_section_only() {
    let input = b"Received: from a\r\nreceived: from b\r\n\tby c\r\nX-Received: no\r\nRECEIVED:d\r\n\r\nReceived: in the body\r\n.\r\n";
    let mut receiver = DataReceiver::new(BareLf::Reject, u64::MAX);
    let mut out = Vec::new();
    for byte in input.chunks(1) {
        receiver.feed(byte, &mut out);
    }
    assert_eq!(receiver.content.received_headers(), 3);
    let mut receiver = DataReceiver::new(BareLf::Reject, u64::MAX);
    receiver.feed(b"\r\nReceived: x\r\n.\r\n", &mut out);
    assert_eq!(
        receiver.content.received_headers(),
        0,
        "no header section at all"
    );
}

#[test]
fn bdat_takes_exactly_the_chunk() {
    let mut content = Content::new(u64::MAX);
    let mut out = Vec::new();
    let mut chunk = BdatReceiver::new(5, BareLf::Reject);
    assert_eq!(
        chunk.feed(b"ab", &mut content, &mut out),
        (2, DataStatus::NeedMore)
    );
    assert_eq!(
        chunk.feed(b"c\r\n.\rQUIT", &mut content, &mut out),
        (3, DataStatus::Complete)
    );
    assert_eq!(out, b"abc\r\n");
    assert_eq!(content.size(), 5);
}

/// What the content of a BDAT message came to.
#[derive(Debug, PartialEq, Eq)]
struct BdatOutcome {
    content: Vec<u8>,
    status: DataStatus,
    size: u64,
    nul: bool,
    received: usize,
}

/// Sends `message` as BDAT chunks cut at `cuts` (the last one `LAST`),
/// each chunk's bytes arriving in reads of `read` bytes.
fn bdat(message: &[u8], cuts: &[usize], bare_lf: BareLf, read: usize) -> BdatOutcome {
    let mut content = Content::new(u64::MAX);
    let mut out = Vec::new();
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(message.len());
    let mut status = DataStatus::Complete;
    let chunks = bounds.len() - 1;
    'chunks: for (i, pair) in bounds.windows(2).enumerate() {
        let bytes = &message[pair[0]..pair[1]];
        let mut receiver = BdatReceiver::new(bytes.len() as u64, bare_lf);
        for piece in bytes.chunks(read.max(1)) {
            let (used, s) = receiver.feed(piece, &mut content, &mut out);
            status = s;
            if s == DataStatus::BareLineEnding {
                break 'chunks;
            }
            assert_eq!(used, piece.len());
        }
        if i + 1 == chunks {
            status = receiver.finish_message(&mut content, &mut out);
        }
    }
    BdatOutcome {
        content: out,
        status,
        size: content.size(),
        nul: content.has_nul(),
        received: content.received_headers(),
    }
}

/// Every way of cutting `message` into up to three chunks, and every
/// read size, gives what one chunk read whole gives.
fn bdat_every_chunking(message: &[u8], bare_lf: BareLf) -> BdatOutcome {
    let whole = bdat(message, &[], bare_lf, message.len());
    for a in 0..=message.len() {
        for b in a..=message.len() {
            for read in 1..=message.len().max(1) {
                assert_eq!(
                    bdat(message, &[a, b], bare_lf, read),
                    whole,
                    "{message:?} cut at {a} and {b}, reads of {read}"
                );
            }
        }
    }
    whole
}

#[test]
fn bdat_content_follows_the_line_ending_rule_however_it_is_chunked() {
    // (message, normalised content, has a bare line ending)
    let cases: [(&[u8], &[u8], bool); 9] = [
        (
            b"Subject: a\r\n\r\nbody\r\n",
            b"Subject: a\r\n\r\nbody\r\n",
            false,
        ),
        (b".\r\n..\r\n", b".\r\n..\r\n", false),
        (b"", b"", false),
        (b"a\nb\r\n", b"a\r\nb\r\n", true),
        (b"a\rb\r\n", b"a\r\nb\r\n", true),
        (b"a\r", b"a\r\n", true),
        (b"a\r\r\n", b"a\r\n\r\n", true),
        (b"\n.\n", b"\r\n.\r\n", true),
        (b"x\r\n.\r\r\n", b"x\r\n.\r\n\r\n", true),
    ];
    for (message, normalised, bare) in cases {
        let strict = bdat_every_chunking(message, BareLf::Reject);
        match bare {
            true => assert_eq!(strict.status, DataStatus::BareLineEnding, "{message:?}"),
            false => {
                assert_eq!(strict.status, DataStatus::Complete, "{message:?}");
                assert_eq!(strict.content, message, "{message:?}");
                assert_eq!(strict.size, message.len() as u64);
            }
        }
        let lenient = bdat_every_chunking(message, BareLf::Normalize);
        assert_eq!(lenient.status, DataStatus::Complete, "{message:?}");
        assert_eq!(lenient.content, normalised, "{message:?}");
        assert_eq!(lenient.size, normalised.len() as u64);
    }
}

#[test]
fn bdat_counts_received_headers_and_notes_nul_however_it_is_chunked() {
    let message = b"Received: a\r\nReceived: b\r\n\r\nx\0y\r\n";
    for mode in [BareLf::Reject, BareLf::Normalize] {
        let outcome = bdat_every_chunking(message, mode);
        assert_eq!(outcome.status, DataStatus::Complete);
        assert_eq!(outcome.received, 2);
        assert!(outcome.nul);
    }
    assert!(!bdat_every_chunking(b"Received: a\r\n\r\nx\r\n", BareLf::Reject).nul);
}

#[test]
fn data_notes_a_nul_anywhere_in_the_content() {
    for (input, nul) in [
        (&b"a\r\n\0.\r\n.\r\n"[..], true),
        (b"Subject: \0\r\n\r\nx\r\n.\r\n", true),
        (b"Subject: x\r\n\r\nx\r\n.\r\n", false),
    ] {
        for mode in [BareLf::Reject, BareLf::Normalize] {
            assert_eq!(all_chunkings(input, mode).1, DataStatus::Complete);
            for chunk in 1..=input.len() {
                let mut receiver = DataReceiver::new(mode, u64::MAX);
                let mut out = Vec::new();
                for piece in input.chunks(chunk) {
                    receiver.feed(piece, &mut out);
                }
                assert_eq!(
                    receiver.content.has_nul(),
                    nul,
                    "{input:?} in pieces of {chunk}"
                );
            }
        }
    }
}

#[test]
fn finds_the_message_id_however_the_content_is_cut() {
    let input = b"Subject: x\r\nmessage-ID:\r\n <abc@example.test>\r\nMessage-ID: <second@x>\r\n\r\nMessage-ID: <body@x>\r\n.\r\n";
    for chunk in 1..input.len() {
        let mut receiver = DataReceiver::new(BareLf::Reject, u64::MAX);
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            receiver.feed(piece, &mut out);
        }
        assert_eq!(
            receiver.content.message_id().as_deref(),
            Some("<abc@example.test>"),
            "chunks of {chunk}"
        );
    }
    let mut receiver = DataReceiver::new(BareLf::Reject, u64::MAX);
    receiver.feed(
        b"Subject: x\r\n\r\nMessage-ID: <body@x>\r\n.\r\n",
        &mut Vec::new(),
    );
    assert_eq!(
        receiver.content.message_id(),
        None,
        "only the header section"
    );
}
