//! The client against scripted servers over in-memory pipes: what it
//! writes, byte for byte, and what it makes of the replies.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

use super::*;
use crate::outbound::wire::xtext;
use crate::queue::envelope::Notify;
use crate::queue::envelope::Ret;

/// Content as a delivery hands it over, held in memory.
fn body(content: &[u8]) -> Body {
    Body::in_memory(content.to_vec())
}

/// A server that answers each line it reads with the next scripted reply
/// (`None`: read the line, answer nothing) and records everything read.
async fn scripted(
    server: DuplexStream,
    greeting: &'static str,
    replies: Vec<(&'static str, Option<&'static str>)>,
) -> String {
    let (read, mut write) = tokio::io::split(server);
    let mut read = BufReader::new(read);
    let _ = write.write_all(greeting.as_bytes()).await;
    let mut seen = String::new();
    for (expect_prefix, reply) in replies {
        let mut line = String::new();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
        if expect_prefix == "DATA-CONTENT" {
            // Read content lines up to the lone dot.
            while line != ".\r\n" {
                line.clear();
                if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                seen.push_str(&line);
            }
        }
        if let Some(reply) = reply {
            let _ = write.write_all(reply.as_bytes()).await;
        }
    }
    seen
}

fn envelope() -> Envelope {
    Envelope {
        sender: "alice@a.test".into(),
        recipients: vec![
            Recipient {
                address: "bob@b.test".into(),
                orcpt: Some("bob@b.test".into()),
                notify: Some(Notify {
                    failure: true,
                    delay: true,
                    success: false,
                }),
            },
            Recipient {
                address: "a b@b.test".into(),
                orcpt: None,
                notify: None,
            },
        ],
        eight_bit: true,
        envid: Some("id+1=x".into()),
        ret: Some(Ret::Hdrs),
        ..Envelope::default()
    }
}

const EHLO_FULL: &str = "250-mx.b.test\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250-DSN\r\n250 STARTTLS\r\n";

#[tokio::test]
async fn pipelined_transaction_with_dsn_parameters_and_dot_stuffing() {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(scripted(
        theirs,
        "220 mx.b.test ESMTP\r\n",
        vec![
            ("EHLO", Some(EHLO_FULL)),
            // MAIL, two RCPTs and DATA arrive in one write; answer after DATA.
            ("MAIL", None),
            ("RCPT", None),
            ("RCPT", None),
            (
                "DATA",
                Some("250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go\r\n"),
            ),
            ("DATA-CONTENT", Some("250 2.0.0 queued as X\r\n")),
        ],
    ));
    let mut client = Client::new(ours);
    assert_eq!(
        client.reply(Phase::Greeting).await.map(|r| r.code).ok(),
        Some(220)
    );
    assert!(client.hello("relay.example.test").await.is_ok());
    assert!(
        client.capabilities.pipelining && client.capabilities.dsn && client.capabilities.starttls
    );
    let envelope = envelope();
    let recipients: Vec<&Recipient> = envelope.recipients.iter().collect();
    let outcome = client
        .transaction(&envelope, &recipients, &body(b"Subject: x\r\n\r\n.dot\r\n"))
        .await;
    let outcome = outcome.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        outcome.rcpts.iter().map(|r| r.code).collect::<Vec<_>>(),
        [250, 550]
    );
    assert_eq!(outcome.data.map(|r| r.code), Some(250));
    drop(client);
    let seen = server.await.unwrap_or_default();
    assert_eq!(
        seen,
        "EHLO relay.example.test\r\n\
         MAIL FROM:<alice@a.test> SIZE=20 BODY=8BITMIME RET=HDRS ENVID=id+2B1+3Dx\r\n\
         RCPT TO:<bob@b.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@b.test\r\n\
         RCPT TO:<\"a b\"@b.test>\r\n\
         DATA\r\n\
         Subject: x\r\n\r\n..dot\r\n.\r\n"
    );
}

#[tokio::test]
async fn without_pipelining_refused_recipients_mean_no_content() {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(scripted(
        theirs,
        "220 old.b.test\r\n",
        vec![
            ("EHLO", Some("502 5.5.1 what?\r\n")),
            ("HELO", Some("250 old.b.test\r\n")),
            ("MAIL", Some("250 ok\r\n")),
            ("RCPT", Some("550 no\r\n")),
            ("RCPT", Some("451 later\r\n")),
        ],
    ));
    let mut client = Client::new(ours);
    let _ = client.reply(Phase::Greeting).await;
    let hello = client
        .hello("relay.example.test")
        .await
        .map(|r| r.code)
        .ok();
    assert_eq!(hello, Some(250));
    assert!(!client.capabilities.esmtp);
    let envelope = envelope();
    let recipients: Vec<&Recipient> = envelope.recipients.iter().collect();
    let outcome = client
        .transaction(&envelope, &recipients, &body(b"x\r\n"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(outcome.data.is_none());
    drop(client);
    let seen = server.await.unwrap_or_default();
    // No ESMTP parameters to a HELO server, and no DATA.
    assert_eq!(seen, "EHLO relay.example.test\r\nHELO relay.example.test\r\nMAIL FROM:<alice@a.test>\r\nRCPT TO:<bob@b.test>\r\nRCPT TO:<\"a b\"@b.test>\r\n");
}

#[tokio::test]
async fn starttls_hands_back_the_stream_and_drops_injected_replies() {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(scripted(
        theirs,
        "220 mx.b.test\r\n",
        vec![
            ("EHLO", Some(EHLO_FULL)),
            ("STARTTLS", Some("220 go ahead\r\n250 injected\r\n")),
        ],
    ));
    let mut client = Client::new(ours);
    let _ = client.reply(Phase::Greeting).await;
    let _ = client.hello("r").await;
    let stream = match client.starttls().await {
        Ok(StartTls::Ready(stream)) => stream,
        _ => panic!("STARTTLS should succeed"),
    };
    // A fresh client over the (here still plain) stream never sees the
    // injected "250": the server has said all it will, so it reads EOF.
    let mut after = Client::new(stream);
    after.timeout_scale = 0.01;
    let next = after.reply(Phase::Ehlo).await;
    assert!(
        matches!(next, Err(ClientError::Closed(Phase::Ehlo))),
        "{next:?}"
    );
    assert_eq!(after.capabilities, Capabilities::default());
    let _ = server.await;
}

/// One recipient, no pipelining, DATA answered with `data`: the error.
async fn data_answered(data: &'static str) -> (ClientError, String) {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(scripted(
        theirs,
        "220 mx.b.test\r\n",
        vec![
            ("EHLO", Some("250 mx.b.test\r\n")),
            ("MAIL", Some("250 ok\r\n")),
            ("RCPT", Some("250 ok\r\n")),
            ("DATA", Some(data)),
            ("DATA-CONTENT", Some("250 2.0.0 queued\r\n")),
        ],
    ));
    let mut client = Client::new(ours);
    let _ = client.reply(Phase::Greeting).await;
    let _ = client.hello("r").await;
    let mut envelope = envelope();
    envelope.recipients.truncate(1);
    let recipients: Vec<&Recipient> = envelope.recipients.iter().collect();
    // Give the server's whole answer time to arrive, as on a real socket.
    tokio::task::yield_now().await;
    let error = match client
        .transaction(&envelope, &recipients, &body(b"x\r\n"))
        .await
    {
        Ok(t) => panic!("{data:?} taken as {:?}", t.data),
        Err(e) => e,
    };
    drop(client);
    (error, server.await.unwrap_or_default())
}

#[tokio::test]
async fn a_reply_to_content_not_yet_sent_is_a_protocol_error_not_a_delivery() {
    for (data, why) in [
        (
            "250 2.0.0 queued\r\n",
            "\"250 2.0.0 queued\" instead of 354",
        ),
        (
            "354 go\r\n250 2.0.0 queued early\r\n",
            "\"250 2.0.0 queued early\" after 354",
        ),
    ] {
        let (error, seen) = data_answered(data).await;
        assert!(
            matches!(&error, ClientError::Protocol(Phase::Data, text) if text.contains(why)),
            "{data:?}: {error}"
        );
        assert!(!seen.contains("x\r\n.\r\n"), "content sent: {seen:?}");
    }
}

#[tokio::test]
async fn silence_times_out_naming_the_phase() {
    let (ours, _theirs) = tokio::io::duplex(1024);
    let mut client = Client::new(ours);
    client.timeout_scale = 0.0001;
    assert!(matches!(
        client.reply(Phase::Greeting).await,
        Err(ClientError::Timeout(Phase::Greeting))
    ));
}

#[tokio::test]
async fn a_server_that_stops_reading_is_cut_naming_the_phase() {
    // Nobody reads the other end: the pipe's 4 KiB fill and the write waits.
    let (ours, _theirs) = tokio::io::duplex(4096);
    let mut client = Client::new(ours);
    client.timeout_scale = 0.0001;
    let error = client.send_content(&body(&vec![b'x'; 1 << 20])).await;
    assert!(
        matches!(error, Err(ClientError::Stalled(Phase::Content))),
        "{error:?}"
    );
    let text = error.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.contains("stopped reading during message content"),
        "{text}"
    );
}

#[tokio::test]
async fn content_that_cannot_be_read_is_never_ended_with_the_dot() {
    use std::io::Write;
    use tokio::io::AsyncReadExt;
    // The file holds 300 KiB; the body says 400: the read past the end fails.
    let mut file = tempfile::tempfile().unwrap_or_else(|e| panic!("{e}"));
    let line = b"a line of the message, with a CRLF\r\n.and a dot\r\n";
    for _ in 0..300 * 1024 / line.len() {
        file.write_all(line).unwrap_or_else(|e| panic!("{e}"));
    }
    let truncated = Body::in_file(file, 0, 400 * 1024);
    let (ours, mut theirs) = tokio::io::duplex(1 << 20);
    let mut client = Client::new(ours);
    let error = client.send_content(&truncated).await;
    assert!(matches!(error, Err(ClientError::Content(_))), "{error:?}");
    assert_eq!(error.map_err(|e| e.phase()).err(), Some(Phase::Content));
    drop(client);
    let mut sent = Vec::new();
    let _ = theirs.read_to_end(&mut sent).await;
    assert!(sent.starts_with(b"a line"), "{} bytes sent", sent.len());
    assert!(!sent.ends_with(b"\r\n.\r\n"), "the data must not end");
}

#[test]
fn paths_and_xtext() {
    assert_eq!(path("a.b@c.test"), "a.b@c.test");
    assert_eq!(path("a b@c.test"), "\"a b\"@c.test");
    assert_eq!(path("a\"b@c.test"), "\"a\\\"b\"@c.test");
    assert_eq!(path(""), "");
    assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
}

/// What a reply as sent gives as capabilities (`None`: not a reply, or not
/// an EHLO reply the parser accepts).
fn capabilities_of(wire: &[u8]) -> Option<Capabilities> {
    let mut input = wire;
    let reply = crate::smtp::reply::ReplyReader::new()
        .read(&mut input)
        .ok()??;
    Capabilities::from_ehlo(&reply).ok()
}

/// Found by the `ehlo` fuzz target: a keyword behind a tab and a stray CR
/// is not an extension a server offers (and missing it is safe), while
/// the same keyword on a line of its own is seen.
#[test]
fn a_keyword_behind_a_tab_and_a_stray_cr_is_not_taken_as_offered() {
    let odd = capabilities_of(
        b"250-\0\0V\0\0VE\x05\n250-\t\rSMTPUTF8\n250  E0\xff\xff\x07\xa7\xaaSC\rESD\r\n",
    );
    assert!(odd.is_none_or(|caps| !caps.smtputf8), "{odd:?}");
    let plain = capabilities_of(b"250-mx.test\r\n250-SMTPUTF8\r\n250 8BITMIME\r\n");
    assert!(
        plain.is_some_and(|caps| caps.smtputf8 && caps.eight_bit),
        "{plain:?}"
    );
}

/// From alice@a.test to bob@b.test, nothing else.
fn to_bob() -> Envelope {
    Envelope {
        sender: "alice@a.test".into(),
        recipients: vec![Recipient {
            address: "bob@b.test".into(),
            orcpt: None,
            notify: None,
        }],
        ..Envelope::default()
    }
}

/// A kept connection's RSET goes out in front of the next MAIL, in the
/// same write, and its reply is read first.
#[tokio::test]
async fn a_kept_connection_pipelines_its_rset_in_front_of_the_next_mail() {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(scripted(
        theirs,
        "220 mx.b.test ESMTP\r\n",
        vec![
            ("EHLO", Some(EHLO_FULL)),
            ("RSET", None),
            ("MAIL", None),
            ("RCPT", None),
            (
                "DATA",
                Some("250 2.0.0 reset\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n"),
            ),
            ("DATA-CONTENT", Some("250 2.0.0 queued\r\n")),
        ],
    ));
    let mut client = Client::new(ours);
    let _ = client.reply(Phase::Greeting).await;
    assert!(client.hello("relay.example.test").await.is_ok());
    let envelope = to_bob();
    let recipients: Vec<&Recipient> = envelope.recipients.iter().collect();
    // As if the connection had just been kept after a transaction.
    assert!(client.ready_for_next().await);
    let outcome = client
        .transaction(&envelope, &recipients, &body(b"Subject: x\r\n\r\nhi\r\n"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.data.map(|r| r.code), Some(250));
    drop(client);
    let seen = server.await.unwrap_or_default();
    assert!(
        seen.starts_with(
            "EHLO relay.example.test\r\nRSET\r\nMAIL FROM:<alice@a.test> SIZE=18\r\nRCPT TO:<bob@b.test>\r\nDATA\r\n\
             Subject: x\r\n\r\nhi\r\n.\r\n"
        ),
        "{seen}"
    );
}

/// A kept connection the server has closed fails in the RSET phase, so
/// the delivery takes a new connection instead of deferring the message.
#[tokio::test]
async fn a_closed_kept_connection_fails_in_the_rset_phase() {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(scripted(
        theirs,
        "220 mx.b.test ESMTP\r\n",
        vec![("EHLO", Some(EHLO_FULL))],
    ));
    let mut client = Client::new(ours);
    let _ = client.reply(Phase::Greeting).await;
    assert!(client.hello("relay.example.test").await.is_ok());
    let _ = server.await;
    // The server is gone; in_step may not have seen it yet.
    client.reset_first = true;
    let envelope = to_bob();
    let recipients: Vec<&Recipient> = envelope.recipients.iter().collect();
    let outcome = client
        .transaction(&envelope, &recipients, &body(b"hi\r\n"))
        .await;
    assert!(
        outcome.as_ref().is_err_and(|e| e.phase() == Phase::Rset),
        "{:?}",
        outcome.map(|t| t.mail.code)
    );
}
