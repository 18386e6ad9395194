use super::*;

const EHLO: &[u8] = b"250-mx.example.test greets [127.0.0.1]\r\n\
250-PIPELINING\r\n\
250-SIZE 35882577\r\n\
250-8BITMIME\r\n\
250-STARTTLS\r\n\
250 ENHANCEDSTATUSCODES\r\n";

/// Feeds `input` in the pieces given by `cuts` and collects every reply.
fn read_all(input: &[u8], cuts: &[usize]) -> Result<Vec<Reply>, ReplyError> {
    let mut reader = ReplyReader::new();
    let mut replies = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        let mut chunk = &input[start..end];
        while let Some(reply) = reader.read(&mut chunk)? {
            replies.push(reply);
        }
        assert!(chunk.is_empty(), "reader left input behind mid-stream");
        start = end;
    }
    Ok(replies)
}

fn one(input: &[u8]) -> Result<Reply, ReplyError> {
    let mut input = input;
    ReplyReader::new()
        .read(&mut input)
        .map(|r| r.expect("complete reply"))
}

#[test]
fn single_line_with_enhanced_code() {
    let reply = one(b"250 2.0.0 Ok: queued as 1234\r\n").unwrap();
    assert_eq!(reply.code, 250);
    assert_eq!(reply.enhanced, Some([2, 0, 0]));
    assert_eq!(reply.lines, vec!["Ok: queued as 1234"]);
    assert!(reply.is_positive());
}

#[test]
fn the_enhanced_code_as_a_status() {
    let reply = one(b"450 4.7.26 Unauthenticated mail\r\n").unwrap();
    assert_eq!(
        reply.status().map(|s| s.to_string()).as_deref(),
        Some("4.7.26")
    );
    let plain = one(b"250 Ok\r\n").unwrap();
    assert_eq!(plain.status(), None);
}

#[test]
fn multi_line_greeting_keeps_every_line() {
    let reply = one(b"220-mx.example.test ESMTP\r\n220-no UCE\r\n220 ready\r\n").unwrap();
    assert_eq!(reply.code, 220);
    assert_eq!(
        reply.lines,
        vec!["mx.example.test ESMTP", "no UCE", "ready"]
    );
    assert_eq!(
        reply.summary(),
        "220 mx.example.test ESMTP / no UCE / ready"
    );
}

#[test]
fn ehlo_capabilities_come_from_smtp_proto() {
    let reply = one(EHLO).unwrap();
    let ehlo = reply.ehlo().unwrap();
    assert_ne!(ehlo.capabilities & smtp_proto::EXT_START_TLS, 0);
    assert_eq!(ehlo.size, 35882577);

    let without = one(b"250-mx.example.test\r\n250 PIPELINING\r\n").unwrap();
    assert_eq!(
        without.ehlo().unwrap().capabilities & smtp_proto::EXT_START_TLS,
        0
    );
}

#[test]
fn every_split_point_gives_the_same_replies() {
    let mut stream = EHLO.to_vec();
    stream.extend_from_slice(b"220 2.0.0 Ready to start TLS\r\n554-5.7.1 no\n554 5.7.1 go away\n");
    let whole = read_all(&stream, &[]).unwrap();
    assert_eq!(whole.len(), 3);
    assert_eq!(whole[2].code, 554);
    assert_eq!(whole[2].lines, vec!["no", "go away"]);
    for cut in 0..=stream.len() {
        assert_eq!(read_all(&stream, &[cut]).unwrap(), whole, "split at {cut}");
    }
    for cut in 0..stream.len() {
        for second in cut..=stream.len() {
            assert_eq!(read_all(&stream, &[cut, second]).unwrap(), whole);
        }
    }
    let bytewise: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(read_all(&stream, &bytewise).unwrap(), whole);
}

#[test]
fn bytes_after_a_reply_are_left_for_the_caller() {
    let mut reader = ReplyReader::new();
    let mut input: &[u8] = b"220 go ahead\r\n250 injected\r\n";
    let reply = reader.read(&mut input).unwrap().unwrap();
    assert_eq!(reply.code, 220);
    assert_eq!(input, b"250 injected\r\n");
}

#[test]
fn incomplete_reply_needs_more() {
    let mut reader = ReplyReader::new();
    let mut input: &[u8] = b"250-first\r\n250 sec";
    assert_eq!(reader.read(&mut input).unwrap(), None);
    assert!(input.is_empty());
    let mut rest: &[u8] = b"ond\r\n";
    assert_eq!(
        reader.read(&mut rest).unwrap().unwrap().lines,
        vec!["first", "second"]
    );
}

#[test]
fn overlong_line_is_refused_even_in_small_chunks() {
    let mut line = b"250 ".to_vec();
    line.extend(std::iter::repeat_n(b'x', MAX_LINE_LENGTH));
    line.extend_from_slice(b"\r\n");
    assert_eq!(one(&line), Err(ReplyError::LineTooLong));
    let cuts: Vec<usize> = (1..line.len()).step_by(7).collect();
    assert_eq!(read_all(&line, &cuts), Err(ReplyError::LineTooLong));
}

#[test]
fn a_line_at_the_limit_is_accepted() {
    let mut line = b"250 ".to_vec();
    line.extend(std::iter::repeat_n(b'x', MAX_LINE_LENGTH - 6));
    line.extend_from_slice(b"\r\n");
    assert_eq!(one(&line).unwrap().code, 250);
}

#[test]
fn endless_continuation_is_refused() {
    let many = "250-x\r\n".repeat(MAX_LINES + 1);
    let result = one(many.as_bytes());
    assert!(
        matches!(result, Err(ReplyError::TooManyLines | ReplyError::TooLong)),
        "{result:?}"
    );
    let fine = format!("{}250 end\r\n", "250-x\r\n".repeat(MAX_LINES - 1));
    assert_eq!(one(fine.as_bytes()).unwrap().lines.len(), MAX_LINES);
}

#[test]
fn mixed_codes_are_a_protocol_error() {
    assert_eq!(
        one(b"250-one\r\n220 two\r\n"),
        Err(ReplyError::MixedCodes {
            first: 250,
            other: 220
        })
    );
}

#[test]
fn garbage_is_a_syntax_error() {
    assert!(matches!(
        one(b"HTTP/1.1 400 Bad\r\n"),
        Err(ReplyError::Syntax(_))
    ));
    assert!(matches!(one(b"25x ok\r\n"), Err(ReplyError::Syntax(_))));
    assert!(matches!(one(b"999 odd\r\n"), Err(ReplyError::Syntax(_))));
}

#[test]
fn a_bad_line_too_long_gives_the_same_error_however_it_is_cut() {
    // Found by the fuzzer: whole, the length check came first
    // (LineTooLong); cut after the first bytes, the parser saw the bad
    // code first (Syntax). The first error in the bytes wins either way.
    let mut input = b"\x10le.".to_vec();
    input.extend(std::iter::repeat_n(b'x', 2 * MAX_LINE_LENGTH));
    input.extend_from_slice(b"\r\n");
    let whole = read_all(&input, &[]);
    assert!(matches!(whole, Err(ReplyError::Syntax(_))), "{whole:?}");
    for cut in [1, 4, 234, MAX_LINE_LENGTH, MAX_LINE_LENGTH + 7] {
        assert_eq!(read_all(&input, &[cut]), whole, "cut at {cut}");
    }
    // A good start and a line too long is still that.
    let mut long = b"250-".to_vec();
    long.extend(std::iter::repeat_n(b'x', 2 * MAX_LINE_LENGTH));
    long.extend_from_slice(b"\r\n250 ok\r\n");
    assert_eq!(read_all(&long, &[]), Err(ReplyError::LineTooLong));
    assert_eq!(read_all(&long, &[500]), Err(ReplyError::LineTooLong));
}
