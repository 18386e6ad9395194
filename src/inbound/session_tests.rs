//! The session driven without sockets: a tiny driver that opens, commits
//! and aborts messages in memory.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::config::Config;

const BASE: &str = "[server]\nhostname = \"relay.example.test\"\nmax_recipients = 3\nmax_message_size = \"1KiB\"\nmax_hops = 2\n\
    [tls]\ncert = \"c\"\nkey = \"k\"\nclient_ca = [\"ca\"]\n[relay]\naccepted_domains = [\"example.test\"]\n\
    [[outbound]]\nname = \"in\"\nrecipient_domains = [\"example.test\"]\nsmarthosts = [\"10.0.0.5\"]\n\
    [[inbound]]\nname = \"lan\"\nremote_ips = [\"10.0.0.0/8\"]\nallow_relay = true\n\
    [[inbound]]\nname = \"secure\"\nremote_ips = [\"10.9.0.0/16\"]\nrequire_tls = true\nallow_relay = true\n\
    [[inbound]]\nname = \"partner\"\ntls_client_cert_names = [\"mail.contoso.test\"]\nallow_relay = true\n";

struct Driver {
    session: Session,
    wire: String,
    content: Vec<u8>,
    queued: Vec<(Envelope, String)>,
    starttls: usize,
    closed: bool,
    unread: Vec<u8>,
    refusals: Vec<Refusal>,
    context: Context,
}

impl Driver {
    fn new(ip: &str) -> Self {
        Driver::with(BASE, ip)
    }

    fn with(text: &str, ip: &str) -> Self {
        Driver::with_backlog(text, ip, Default::default())
    }

    /// A session whose flow control reads `backlog`.
    fn with_backlog(text: &str, ip: &str, backlog: crate::queue::backlog::Backlog) -> Self {
        let config =
            Config::parse(Path::new("t.toml"), text.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let policy = Arc::new(InboundPolicy::new(&config, backlog));
        let session = Session::new(policy, ip.parse().unwrap_or_else(|e| panic!("{e}")), None);
        let mut out = Output::default();
        session.greeting(&mut out);
        Driver {
            session,
            wire: String::from_utf8_lossy(&out.replies).into_owned(),
            content: Vec::new(),
            queued: Vec::new(),
            starttls: 0,
            closed: false,
            unread: Vec::new(),
            refusals: Vec::new(),
            context: Context::default(),
        }
    }

    /// Feeds `input` after what the session left unread before (a
    /// command line cut by the socket); returns the replies it produced.
    fn send(&mut self, input: &[u8]) -> String {
        let before = self.wire.len();
        let mut buffered = std::mem::take(&mut self.unread);
        buffered.extend_from_slice(input);
        let mut rest = &buffered[..];
        while !self.closed {
            // The context persists across steps, as in the real driver.
            let mut out = Output {
                context: std::mem::take(&mut self.context),
                ..Output::default()
            };
            let (used, action) = self.session.feed(rest, &mut out);
            rest = &rest[used..];
            self.absorb(&out);
            self.context = out.context.clone();
            let mut out = Output {
                context: std::mem::take(&mut out.context),
                ..Output::default()
            };
            match action {
                Action::None if used == 0 || rest.is_empty() => break,
                Action::None => {}
                Action::OpenMessage => {
                    let id = format!("Q{}", self.queued.len() + 1);
                    self.content.clear();
                    let envelope = self.session.envelope().cloned();
                    assert!(envelope.is_some(), "OpenMessage without an envelope");
                    let next = self.session.message_opened(
                        &id,
                        "Sun, 22 Nov 2026 07:00:00 +0000",
                        &mut out,
                    );
                    assert_ne!(next, Action::Commit, "handled below when it occurs");
                    if next == Action::Close {
                        self.closed = true;
                    }
                }
                Action::Commit => {
                    let envelope = self.session.envelope().cloned().unwrap_or_default();
                    self.queued.push((
                        envelope,
                        String::from_utf8_lossy(&self.content).into_owned(),
                    ));
                    self.session.committed(Ok(()), &mut out);
                }
                Action::Abort => self.content.clear(),
                Action::StartTls => self.starttls += 1,
                Action::Close => self.closed = true,
            }
            self.absorb(&out);
            self.context = std::mem::take(&mut out.context);
        }
        self.unread = rest.to_vec();
        self.wire[before..].to_string()
    }

    fn absorb(&mut self, out: &Output) {
        self.refusals.extend(out.refusals.iter().cloned());
        self.wire.push_str(&String::from_utf8_lossy(&out.replies));
        self.content.extend_from_slice(&out.content);
    }

    fn codes(&mut self, input: &str) -> Vec<String> {
        self.send(input.as_bytes())
            .lines()
            .filter(|l| l.as_bytes().get(3) == Some(&b' '))
            .map(|l| l.to_string())
            .collect()
    }
}

fn code_list(lines: &[String]) -> Vec<&str> {
    lines.iter().map(|l| &l[..3]).collect()
}

#[test]
fn a_pipelined_transaction_is_queued_with_its_envelope() {
    let mut d = Driver::new("192.0.2.1");
    assert_eq!(d.wire, "220 relay.example.test ESMTP tlsrelay\r\n");
    let ehlo = d.send(b"EHLO client.test\r\n");
    assert!(ehlo.starts_with("250-relay.example.test greets client.test\r\n"));
    for capability in [
        "PIPELINING",
        "SIZE 1024",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "CHUNKING",
        "DSN",
        "STARTTLS",
    ] {
        assert!(
            ehlo.contains(capability),
            "{capability} missing from {ehlo}"
        );
    }
    let replies = d.codes(
        "MAIL FROM:<a@sender.test> BODY=8BITMIME RET=HDRS ENVID=e1\r\nRCPT TO:<bob@example.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@example.test\r\nDATA\r\n",
    );
    assert_eq!(code_list(&replies), ["250", "250", "354"]);
    let replies = d.codes("Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n");
    assert_eq!(replies, ["250 2.0.0 Ok: queued as Q1", "221 2.0.0 Bye"]);
    assert!(d.closed);
    let (envelope, content) = &d.queued[0];
    assert_eq!(envelope.sender, "a@sender.test");
    assert!(envelope.eight_bit);
    assert_eq!(envelope.ret, Some(crate::queue::envelope::Ret::Hdrs));
    assert_eq!(envelope.envid.as_deref(), Some("e1"));
    assert_eq!(
        envelope.recipients[0].orcpt.as_deref(),
        Some("bob@example.test")
    );
    let notify = envelope.recipients[0].notify.unwrap_or_default();
    assert!(notify.failure && notify.delay && !notify.success);
    assert!(content.starts_with("Received: from client.test (unknown [192.0.2.1])\r\n\tby relay.example.test (tlsrelay) with ESMTP id Q1\r\n\tfor <bob@example.test>; Sun, 22 Nov 2026 07:00:00 +0000\r\n"), "{content}");
    assert!(content.ends_with("Subject: hi\r\n\r\n.dot\r\n"));
}

#[test]
fn relay_control_and_sequence_errors() {
    let mut d = Driver::new("192.0.2.1");
    let replies = d.codes(
        "MAIL FROM:<a@b.test>\r\nEHLO c\r\nRCPT TO:<x@example.test>\r\nMAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@elsewhere.test>\r\nRCPT TO:<x%elsewhere.test@example.test>\r\nRCPT TO:<\"x@elsewhere.test\"@example.test>\r\nRCPT TO:<@example.test:x@elsewhere.test>\r\nDATA\r\n",
    );
    assert_eq!(
        replies,
        [
            "503 5.5.1 Send HELO/EHLO first",
            "250 STARTTLS",
            "503 5.5.1 Need MAIL before RCPT",
            "250 2.1.0 Ok",
            "503 5.5.1 Nested MAIL command",
            "550 5.7.1 Relaying denied",
            "550 5.7.1 Relaying denied",
            "550 5.7.1 Relaying denied",
            "550 5.7.1 Relaying denied",
            "554 5.5.1 No valid recipients",
        ]
    );
    assert!(d.queued.is_empty());
}

#[test]
fn a_backlog_at_the_limit_refuses_mail_and_the_session_goes_on() {
    let backlog = crate::queue::backlog::Backlog::default();
    let config = format!("{BASE}[queue]\nbacklog_limit = 2\n").replacen(
        "[server]\n",
        "[server]\nmax_errors = 2\n",
        1,
    );
    let mut d = Driver::with_backlog(&config, "10.0.0.1", backlog.clone());
    d.send(b"EHLO c\r\n");
    // A transaction under way is finished whatever happens meanwhile.
    let replies = d.codes("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@example.test>\r\n");
    assert_eq!(code_list(&replies), ["250", "250"]);
    backlog.set(2);
    let replies = d.codes("RCPT TO:<y@example.test>\r\nDATA\r\n");
    assert_eq!(code_list(&replies), ["250", "354"]);
    let replies = d.codes(
        ".\r\nMAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\nRSET\r\n",
    );
    let refused = "452 4.3.1 Too much mail is waiting for delivery; try again later";
    assert_eq!(replies[1..], [refused, refused, refused, "250 2.0.0 Ok"]);
    assert!(!d.closed, "not counted as client errors");
    assert_eq!(d.refusals.len(), 3, "each logged as refused");
    assert_eq!(d.refusals[0].context.command, "MAIL");
    backlog.set(1);
    let replies = d.codes("MAIL FROM:<a@b.test>\r\n");
    assert_eq!(replies, ["250 2.1.0 Ok"]);
}

#[test]
fn limits() {
    let mut d = Driver::new("10.0.0.1");
    d.send(b"EHLO c\r\n");
    assert_eq!(
        d.codes("MAIL FROM:<a@b.test> SIZE=2000\r\n"),
        ["552 5.3.4 Message size exceeds fixed maximum message size"]
    );
    let replies = d.codes("MAIL FROM:<a@b.test>\r\nRCPT TO:<1@x.test>\r\nRCPT TO:<2@x.test>\r\nRCPT TO:<3@x.test>\r\nRCPT TO:<4@x.test>\r\n");
    assert_eq!(code_list(&replies), ["250", "250", "250", "250", "452"]);
    assert_eq!(replies[4], "452 4.5.3 Too many recipients");
    let big = format!("DATA\r\n{}\r\n.\r\n", "x".repeat(2000));
    assert_eq!(code_list(&d.codes(&big)), ["354", "552"]);
    assert!(d.queued.is_empty());
    let long = format!("NOOP {}\r\nNOOP\r\n", "x".repeat(2000));
    assert_eq!(d.codes(&long), ["500 5.5.2 Line too long", "250 2.0.0 Ok"]);
    let hops = "MAIL FROM:<a@b.test>\r\nRCPT TO:<1@x.test>\r\nDATA\r\nReceived: a\r\nReceived: b\r\nReceived: c\r\n\r\nx\r\n.\r\n";
    assert_eq!(code_list(&d.codes(hops)), ["250", "250", "354", "554"]);
}

#[test]
fn too_many_errors_close_the_session() {
    let mut d = Driver::new("192.0.2.1");
    let replies = d.codes(&"XYZZY\r\n".repeat(30));
    assert_eq!(replies.len(), 20);
    assert_eq!(
        replies.last().map(String::as_str),
        Some("421 4.7.0 relay.example.test Too many errors; closing")
    );
    assert!(d.closed);
}

#[test]
fn starttls_discards_pipelined_commands_and_forgets_the_session() {
    let mut d = Driver::new("10.9.1.1");
    d.send(b"EHLO c\r\n");
    assert_eq!(
        d.codes("MAIL FROM:<a@b.test>\r\n"),
        ["530 5.7.0 Must issue a STARTTLS command first"]
    );
    assert_eq!(
        d.codes("STARTTLS\r\nRSET\r\n"),
        ["220 2.0.0 Ready to start TLS"]
    );
    assert_eq!(d.starttls, 1);
    d.session.tls_established(TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS_AES_256_GCM_SHA384".into(),
        group: Some("X25519MLKEM768".into()),
        client_cert: ClientCert::None,
    });
    assert_eq!(
        d.codes("MAIL FROM:<a@b.test>\r\n"),
        ["503 5.5.1 Send HELO/EHLO first"]
    );
    let ehlo = d.send(b"EHLO c\r\n");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(d.codes("STARTTLS\r\n"), ["503 5.5.1 TLS already active"]);
    let replies =
        d.codes("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@elsewhere.test>\r\nDATA\r\nhi\r\n.\r\n");
    assert_eq!(code_list(&replies), ["250", "250", "354", "250"]);
    let content = &d.queued[0].1;
    assert!(content.contains("\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 key-exchange X25519MLKEM768)\r\n\t(no client certificate)\r\n\tby relay.example.test (tlsrelay; connector secure) with ESMTPS id Q1"), "{content}");
}

#[test]
fn verified_client_certificate_selects_its_connector() {
    let mut d = Driver::new("192.0.2.1");
    d.send(b"EHLO c\r\nSTARTTLS\r\n");
    d.session.tls_established(TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS_AES_128_GCM_SHA256".into(),
        group: None,
        client_cert: ClientCert::Verified {
            subject: "CN=mail.contoso.test".into(),
            names: vec!["mail.contoso.test".into()],
        },
    });
    let replies = d.codes("EHLO mail.contoso.test\r\nMAIL FROM:<a@contoso.test>\r\nRCPT TO:<x@elsewhere.test>\r\nDATA\r\nhi\r\n.\r\n");
    assert_eq!(code_list(&replies), ["250", "250", "250", "354", "250"]);
    assert!(d.queued[0].1.contains("with ESMTPS id Q1"));
    assert_eq!(d.queued[0].0.client.connector.as_deref(), Some("partner"));
    // An unverified certificate with the same name does not.
    let mut d = Driver::new("192.0.2.1");
    d.send(b"EHLO c\r\nSTARTTLS\r\n");
    d.session.tls_established(TlsInfo {
        client_cert: ClientCert::Unverified {
            subject: "CN=mail.contoso.test".into(),
            reason: "issuer not trusted".into(),
        },
        ..TlsInfo::default()
    });
    assert_eq!(
        code_list(
            &d.codes("EHLO c\r\nMAIL FROM:<a@contoso.test>\r\nRCPT TO:<x@elsewhere.test>\r\n")
        ),
        ["250", "250", "550"]
    );
}

#[test]
fn bdat_chunks_make_one_message() {
    let mut d = Driver::new("10.0.0.1");
    d.send(b"EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\n");
    let replies = d.codes("BDAT 6\r\nline\r\nBDAT 5\r\nabc\r\nBDAT 0 LAST\r\n");
    assert_eq!(
        replies,
        [
            "250 2.0.0 6 octets received",
            "250 2.0.0 5 octets received",
            "250 2.0.0 Ok: queued as Q1"
        ]
    );
    assert!(d.queued[0].1.ends_with("\r\nline\r\nabc\r\n"));
    // Without a transaction the chunk is read and dropped, not run as commands.
    assert_eq!(
        d.codes("BDAT 12 LAST\r\nQUIT\r\nQUIT\r\nNOOP\r\n"),
        ["503 5.5.1 Need MAIL command", "250 2.0.0 Ok"]
    );
    assert_eq!(d.queued.len(), 1);
}

#[test]
fn bare_line_endings_close_the_session_when_rejecting() {
    let mut d = Driver::new("10.0.0.1");
    d.send(b"EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n");
    let replies =
        d.codes("one\n.\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\nsmuggled\r\n.\r\n");
    assert_eq!(code_list(&replies), ["521"]);
    assert!(d.closed);
    assert!(d.queued.is_empty());
}

/// Each BDAT stream in every cut the socket could give it: all pieces
/// of one size, and every two-piece split. The replies and the queued
/// messages are the same.
fn bdat_every_split(config: &str, stream: &[u8]) -> (String, Vec<(Envelope, String)>, bool) {
    let fresh = || {
        let mut d = Driver::with(config, "10.0.0.1");
        d.send(b"EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\n");
        d
    };
    let mut whole = fresh();
    let replies = whole.send(stream);
    let expected = (replies, whole.queued.clone(), whole.closed);
    let mut runs: Vec<Vec<&[u8]>> = (1..stream.len())
        .map(|n| stream.chunks(n).collect())
        .collect();
    runs.extend((1..stream.len()).map(|at| vec![&stream[..at], &stream[at..]]));
    for pieces in runs {
        let mut d = fresh();
        let replies: String = pieces.iter().map(|piece| d.send(piece)).collect();
        let got = (replies, d.queued.clone(), d.closed);
        assert_eq!(got.0, expected.0, "{pieces:?}");
        assert_eq!(got.2, expected.2, "{pieces:?}");
        assert_eq!(
            got.1.iter().map(|q| &q.1).collect::<Vec<_>>(),
            expected.1.iter().map(|q| &q.1).collect::<Vec<_>>(),
            "{pieces:?}"
        );
    }
    expected
}

#[test]
fn bdat_content_with_bare_line_endings_is_refused_or_normalised_like_data() {
    // A bare LF in the first chunk, a CR ending one chunk with no LF
    // after it, and a CRLF straddling two chunks (which is no bare CR).
    let streams: [&[u8]; 3] = [
        b"BDAT 10\r\nSub: a\nb\r\nBDAT 0 LAST\r\nQUIT\r\n",
        b"BDAT 3\r\nx\r\rBDAT 3 LAST\r\ny\r\nQUIT\r\n",
        b"BDAT 6 LAST\r\nx\r\n.\n\rQUIT\r\n",
    ];
    for stream in streams {
        let (replies, queued, closed) = bdat_every_split(BASE, stream);
        assert!(
            replies.ends_with(
                "521 5.5.2 Bare LF or CR in message content violates RFC 5321 §2.3.8; closing\r\n"
            ),
            "{replies}"
        );
        assert!(closed);
        assert!(queued.is_empty());
    }
    let normalize = BASE.replace("max_hops = 2\n", "max_hops = 2\nbare_lf = \"normalize\"\n");
    let expected = ["Sub: a\r\nb\r\n", "x\r\n\r\ny\r\n", "x\r\n.\r\n\r\n"];
    for (stream, content) in streams.into_iter().zip(expected) {
        let (replies, queued, closed) = bdat_every_split(&normalize, stream);
        assert!(
            replies.contains("250 2.0.0 Ok: queued as Q1\r\n"),
            "{replies}"
        );
        assert!(replies.ends_with("221 2.0.0 Bye\r\n"), "{replies}");
        assert!(closed);
        assert_eq!(queued.len(), 1);
        assert!(queued[0].1.ends_with(content), "{:?}", queued[0].1);
    }
    // A CRLF split over two chunks is a line end, in either mode.
    let straddle = b"BDAT 3\r\nab\rBDAT 3 LAST\r\n\ncd\r\nQUIT\r\n";
    let (replies, queued, _) = bdat_every_split(BASE, straddle);
    assert!(
        replies.contains("250 2.0.0 Ok: queued as Q1\r\n"),
        "{replies}"
    );
    assert!(queued[0].1.ends_with("\r\nab\r\ncd"), "{:?}", queued[0].1);
}

#[test]
fn a_nul_in_content_refuses_the_message_and_keeps_the_session() {
    for (stream, replies_before) in [
        (
            &b"DATA\r\nSubject: a\r\n\r\nx\r\n\0.\r\nMAIL FROM:<c@d.test>\r\n.\r\nNOOP\r\n"[..],
            1,
        ),
        (b"BDAT 4\r\nab\0\nBDAT 0 LAST\r\nNOOP\r\n", 1),
        (b"BDAT 3 LAST\r\n\0\r\nNOOP\r\n", 0),
    ] {
        for mode in ["reject", "normalize"] {
            let config = BASE.replace(
                "max_hops = 2\n",
                &format!("max_hops = 2\nbare_lf = \"{mode}\"\n"),
            );
            let (replies, queued, closed) = bdat_every_split(&config, stream);
            let lines: Vec<&str> = replies.lines().collect();
            // BDAT 4 with a bare LF under reject: the line ending decides first.
            if mode == "reject" && stream.starts_with(b"BDAT 4") {
                assert!(replies.starts_with("521 5.5.2 "), "{replies}");
                continue;
            }
            assert_eq!(
                lines[replies_before], "554 5.6.0 NUL character in message content is not allowed",
                "{mode}: {replies}"
            );
            assert_eq!(lines.last(), Some(&"250 2.0.0 Ok"), "{mode}: {replies}");
            assert!(queued.is_empty() && !closed, "{mode}: {replies}");
        }
    }
}

#[test]
fn bdat_with_anything_but_a_size_and_last_is_a_syntax_error() {
    let mut d = Driver::new("10.0.0.1");
    d.send(b"EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\n");
    for bad in [
        "BDAT 5 LAST junk",
        "BDAT 5 junk",
        "BDAT 5 LASTING",
        "BDAT five",
        "BDAT",
        "BDAT 5x LAST",
        "BDAT -5",
        "BDAT 99999999999999999999999",
    ] {
        assert_eq!(
            d.codes(&format!("{bad}\r\n")),
            ["501 5.5.4 Syntax: BDAT chunk-size [LAST]"],
            "{bad}"
        );
    }
    // The transaction is still there; well-formed ones go on.
    assert_eq!(
        d.codes("BDAT  3 last \r\na\r\n"),
        ["250 2.0.0 Ok: queued as Q1"]
    );
}

#[test]
fn shutdown_answers_421() {
    let mut d = Driver::new("10.0.0.1");
    d.session.shut_down();
    assert_eq!(
        d.codes("EHLO c\r\n"),
        ["421 4.3.2 relay.example.test Service shutting down, closing transmission channel"]
    );
    assert!(d.closed);
}

#[test]
fn postmaster_and_null_paths() {
    let mut d = Driver::new("192.0.2.1");
    let replies = d.codes(
        "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nRCPT TO:<>\r\nVRFY bob\r\nHELP\r\n",
    );
    assert_eq!(
        code_list(&replies),
        ["250", "250", "250", "501", "252", "214"]
    );
    assert_eq!(
        d.session
            .envelope()
            .map(|e| e.recipients[0].address.clone())
            .as_deref(),
        Some("postmaster@example.test")
    );
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let mut d = Driver::new("10.0.0.1");
    let replies = d.codes("EHLO c\r\nMAIL FROM:<ü@b.test>\r\nMAIL FROM:<ü@b.test> SMTPUTF8\r\nRCPT TO:<ö@example.test>\r\n");
    assert_eq!(code_list(&replies), ["250", "553", "250", "250"]);
}

#[test]
fn invalid_utf8_is_refused_even_with_smtputf8() {
    let mut d = Driver::new("10.0.0.1");
    let replies = d.send(
        b"EHLO \xff\r\nEHLO c\r\nMAIL FROM:<\xc3@b.test> SMTPUTF8\r\nMAIL FROM:<a@b.test> SMTPUTF8\r\nRCPT TO:<\xff@example.test>\r\n",
    );
    assert_eq!(
        replies
            .lines()
            .filter(|l| l.starts_with("500 5.5.2 Invalid UTF-8"))
            .count(),
        3,
        "{replies}"
    );
    assert!(!replies.contains('\u{fffd}'), "{replies}");
}

#[test]
fn every_4xx_and_5xx_reply_is_a_refusal_naming_its_command_and_address() {
    let mut d = Driver::new("192.0.2.1");
    d.send(
        b"MAIL FROM:<a@sender.test>\r\nEHLO c.test\r\nFROB\r\nMAIL FROM:<a@sender.test> SIZE=999999\r\n\
          MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@elsewhere.test>\r\n\
          DATA\r\nRCPT TO:<b@example.test>\r\nDATA\r\n",
    );
    d.send(b"Message-ID: <m@x>\r\n\r\nbody\0\r\n.\r\nQUIT\r\n");
    let refused_lines: Vec<&str> = d
        .wire
        .lines()
        .filter(|l| l.starts_with('4') || l.starts_with('5'))
        .collect();
    let replies: Vec<&str> = d.refusals.iter().map(|r| r.reply.as_str()).collect();
    assert_eq!(replies, refused_lines, "{}", d.wire);
    let commands: Vec<(&str, Option<&str>)> = d
        .refusals
        .iter()
        .map(|r| (r.context.command.as_str(), r.context.address.as_deref()))
        .collect();
    assert_eq!(
        commands,
        [
            ("MAIL", Some("<a@sender.test>")),
            ("FROB", None),
            ("MAIL", Some("<a@sender.test>")),
            ("RCPT", Some("<b@elsewhere.test>")),
            ("DATA", None),
            ("DATA", None),
        ],
        "{:?}",
        d.refusals
    );
    assert_eq!(
        d.refusals[3].context.sender.as_deref(),
        Some("<a@sender.test>")
    );
    assert!(d.refusals[3].reply.starts_with("550 5.7.1"));
    assert!(
        d.refusals[5].reply.starts_with("554 5.6.0"),
        "NUL in content"
    );
    assert_eq!(
        d.refusals[5].context.sender.as_deref(),
        Some("<a@sender.test>")
    );
}

#[test]
fn a_command_the_log_names_is_bounded_and_never_ends_a_line() {
    let long = format!("RCPT TO:<{}@example.test>\r\n", "a".repeat(5000));
    let context = Context::of_line(long.as_bytes(), None);
    assert_eq!(context.command, "RCPT");
    assert!(context
        .address
        .as_deref()
        .is_some_and(|a| a.chars().count() <= 256));
    let context = Context::of_line(b"\xff\xfe junk\r\n", None);
    assert_eq!(context.command, "?");
}

#[path = "session_requiretls_tests.rs"]
mod requiretls;
