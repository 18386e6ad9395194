use super::*;
use crate::queue::envelope::Notify;

fn recipient(address: &str, notify: Option<Notify>) -> Recipient {
    Recipient {
        address: address.into(),
        orcpt: Some(address.to_string()),
        notify,
    }
}

fn report(envelope: &Envelope, kind: Kind) -> Report<'_> {
    Report {
        kind,
        reporting_mta: "relay.example.test",
        queue_id: "Q1",
        envelope,
        recipients: envelope
            .recipients
            .iter()
            .map(|r| RecipientReport {
                recipient: r.clone(),
                status: crate::smtp::status::EnhancedStatus::BAD_MAILBOX,
                diagnostic: "mx.b.test said: 550 <bob@b.test>: user unknown".into(),
                remote_mta: Some("mx.b.test".into()),
                remote_reply: Some("550 5.1.1 <bob@b.test>: user unknown\r\n".into()),
            })
            .collect(),
        arrival_date: "Sun, 22 Nov 2026 07:00:00 +0000",
        now: "Sun, 22 Nov 2026 08:00:00 +0000",
        retry_until: Some("Fri, 27 Nov 2026 07:00:00 +0000"),
        return_limit: 50_000,
    }
}

const ORIGINAL: &[u8] = b"Received: x\r\nSubject: hello\r\n\r\nbody line\r\n";

#[test]
fn failure_notice_is_an_rfc3464_report() {
    let envelope = Envelope {
        sender: "alice@a.test".into(),
        recipients: vec![recipient("bob@b.test", None)],
        envid: Some("E-1".into()),
        ..Envelope::default()
    };
    let text = report(&envelope, Kind::Failure)
        .render(ORIGINAL, "BOUNDARY")
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let text = text.unwrap_or_default();
    for expected in [
        "From: Mail Delivery System <MAILER-DAEMON@relay.example.test>\r\n",
        "To: <alice@a.test>\r\n",
        "Auto-Submitted: auto-replied\r\n",
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"BOUNDARY\"\r\n",
        "--BOUNDARY\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example.test\r\n",
        "Original-Envelope-Id: E-1\r\n",
        "\r\nFinal-Recipient: rfc822; bob@b.test\r\nOriginal-Recipient: rfc822; bob@b.test\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.b.test\r\nDiagnostic-Code: smtp; 550 5.1.1 <bob@b.test>: user unknown  \r\n",
        "--BOUNDARY\r\nContent-Type: message/rfc822\r\n\r\nReceived: x\r\nSubject: hello\r\n\r\nbody line\r\n--BOUNDARY--\r\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(!text.contains("Will-Retry-Until"));
}

#[test]
fn ret_hdrs_returns_headers_only_and_delay_says_until_when() {
    let envelope = Envelope {
        sender: "alice@a.test".into(),
        recipients: vec![recipient("bob@b.test", None)],
        ret: Some(Ret::Hdrs),
        ..Envelope::default()
    };
    let text = report(&envelope, Kind::Delay)
        .render(ORIGINAL, "B")
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    assert!(text.contains("Action: delayed\r\n"));
    assert!(text.contains("Will-Retry-Until: Fri, 27 Nov 2026 07:00:00 +0000\r\n"));
    assert!(text.contains("Content-Type: text/rfc822-headers\r\n\r\nReceived: x\r\nSubject: hello\r\n\r\n--B--\r\n"), "{text}");
}

#[test]
fn notify_and_the_null_sender_decide_who_hears() {
    let never = Notify::default();
    let failure_only = Notify {
        failure: true,
        ..Notify::default()
    };
    let envelope = Envelope {
        sender: "alice@a.test".into(),
        recipients: vec![
            recipient("never@b.test", Some(never)),
            recipient("fail@b.test", Some(failure_only)),
            recipient("plain@b.test", None),
        ],
        ..Envelope::default()
    };
    let names = |kind| {
        report(&envelope, kind)
            .wanted()
            .iter()
            .map(|r| r.recipient.address.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(Kind::Failure), ["fail@b.test", "plain@b.test"]);
    assert_eq!(names(Kind::Delay), ["plain@b.test"]);
    let bounce = Envelope {
        sender: String::new(),
        ..envelope.clone()
    };
    assert!(
        report(&bounce, Kind::Failure)
            .render(ORIGINAL, "B")
            .is_none(),
        "never bounce a bounce"
    );
}

#[test]
fn smtputf8_messages_use_the_global_types() {
    let envelope = Envelope {
        sender: "ålice@a.test".into(),
        recipients: vec![recipient("bob@b.test", None)],
        smtputf8: true,
        ..Envelope::default()
    };
    let text = report(&envelope, Kind::Failure)
        .render(ORIGINAL, "B")
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    assert!(text.contains("Content-Type: message/global-delivery-status\r\n"));
    assert!(text.contains("Content-Type: message/global\r\n"));
}

#[test]
fn our_own_reasons_are_not_quoted_as_smtp_replies_and_silence_says_why() {
    let envelope = Envelope {
        sender: "alice@a.test".into(),
        recipients: vec![recipient("erin@nomail.test", None)],
        ..Envelope::default()
    };
    let mut notice = report(&envelope, Kind::Failure);
    notice.recipients[0].diagnostic = "nomail.test accepts no mail (null MX, RFC 7505)".into();
    notice.recipients[0].remote_reply = None;
    notice.recipients[0].remote_mta = None;
    let text = notice
        .render(ORIGINAL, "B")
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    assert!(
        text.contains(
            "\r\nDiagnostic-Code: X-tlsrelay; nomail.test accepts no mail (null MX, RFC 7505)\r\n"
        ),
        "{text}"
    );
    assert!(!text.contains("Remote-MTA"), "{text}");
    assert_eq!(notice.withheld(), None);

    let bounce = Envelope {
        sender: String::new(),
        ..envelope.clone()
    };
    assert!(report(&bounce, Kind::Failure)
        .withheld()
        .is_some_and(|why| why.contains("the sender is <>")));
    let never = Envelope {
        recipients: vec![recipient("x@b.test", Some(Notify::default()))],
        ..envelope
    };
    assert!(report(&never, Kind::Failure)
        .withheld()
        .is_some_and(|why| why.contains("NOTIFY")));
}

#[test]
fn ret_full_returns_the_message_up_to_the_limit_and_headers_above_it() {
    let envelope = Envelope {
        sender: "alice@a.test".into(),
        recipients: vec![recipient("bob@b.test", None)],
        ret: Some(Ret::Full),
        ..Envelope::default()
    };
    let render = |original: &[u8], limit: usize| {
        let mut report = report(&envelope, Kind::Failure);
        report.return_limit = limit;
        let bytes = report.render(original, "B").unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let whole = render(ORIGINAL, ORIGINAL.len());
    assert!(whole.contains("Content-Type: message/rfc822\r\n\r\nReceived: x\r\nSubject: hello\r\n\r\nbody line\r\n--B--"), "{whole}");
    let headers = render(ORIGINAL, ORIGINAL.len() - 1);
    assert!(
        headers.contains(
            "Content-Type: text/rfc822-headers\r\n\r\nReceived: x\r\nSubject: hello\r\n\r\n--B--"
        ),
        "{headers}"
    );
    assert!(!headers.contains("body line"), "{headers}");
    // Headers longer than the limit: cut after the last whole line within it.
    let cut = render(ORIGINAL, "Received: x\r\nSub".len());
    assert!(
        cut.contains("Content-Type: text/rfc822-headers\r\n\r\nReceived: x\r\n--B--"),
        "{cut}"
    );
    assert!(!cut.contains("Subject: hello"), "{cut}");
}

/// A notice is rendered from the first `return_limit` + 1 bytes of the
/// message (`finish::returnable`), not the whole: every limit, `RET`
/// and flag gives the same notice from that prefix as from the whole.
#[test]
fn the_first_limit_plus_one_bytes_render_what_the_whole_renders() {
    for (ret, requiretls) in [
        (None, false),
        (Some(Ret::Hdrs), false),
        (Some(Ret::Full), true),
    ] {
        let envelope = Envelope {
            sender: "alice@a.test".into(),
            recipients: vec![recipient("bob@b.test", None)],
            ret,
            requiretls,
            ..Envelope::default()
        };
        for limit in 0..ORIGINAL.len() + 2 {
            let mut report = report(&envelope, Kind::Failure);
            report.return_limit = limit;
            let prefix = &ORIGINAL[..ORIGINAL.len().min(limit + 1)];
            assert_eq!(
                report.render(prefix, "B"),
                report.render(ORIGINAL, "B"),
                "limit {limit}, {ret:?}, requiretls {requiretls}"
            );
        }
    }
}

/// A message flagged REQUIRETLS, sent with `RET=FULL`.
fn flagged(sender: &str, smtputf8: bool) -> Envelope {
    Envelope {
        sender: sender.into(),
        recipients: vec![recipient("bob@b.test", None)],
        ret: Some(Ret::Full),
        smtputf8,
        requiretls: true,
        ..Envelope::default()
    }
}

fn rendered(report: &Report<'_>) -> String {
    let bytes = report.render(ORIGINAL, "B").unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn a_flagged_message_gets_its_headers_alone_whatever_ret_and_the_limit() {
    for smtputf8 in [false, true] {
        let envelope = flagged("alice@a.test", smtputf8);
        for kind in [Kind::Failure, Kind::Delay] {
            let mut notice = report(&envelope, kind);
            notice.return_limit = usize::MAX;
            let text = rendered(&notice);
            let part = match smtputf8 {
                false => "text/rfc822-headers",
                true => "message/global-headers",
            };
            assert!(
                text.contains(&format!(
                    "Content-Type: {part}\r\n\r\nReceived: x\r\nSubject: hello\r\n\r\n--B--\r\n"
                )),
                "{kind:?} {text}"
            );
            assert!(!text.contains("body line"), "{kind:?} {text}");
            assert!(
                text.contains("Your message required TLS (REQUIRETLS, RFC 8689)"),
                "{kind:?} {text}"
            );
        }
    }
    // The limit still caps the headers returned.
    let envelope = flagged("alice@a.test", false);
    let mut notice = report(&envelope, Kind::Failure);
    notice.return_limit = "Received: x\r\nSub".len();
    let cut = rendered(&notice);
    assert!(
        cut.contains("Content-Type: text/rfc822-headers\r\n\r\nReceived: x\r\n--B--"),
        "{cut}"
    );
}

#[test]
fn a_flagged_notice_says_what_a_5_7_30_means_and_an_unflagged_one_says_nothing() {
    let envelope = flagged("alice@a.test", false);
    let mut notice = report(&envelope, Kind::Failure);
    notice.recipients[0].status = crate::smtp::status::EnhancedStatus::REQUIRETLS_NEEDED;
    notice.recipients[0].diagnostic = "REQUIRETLS: mx.b.test does not offer REQUIRETLS".into();
    notice.recipients[0].remote_reply = None;
    let text = rendered(&notice);
    assert!(text.contains("Status: 5.7.30\r\n"), "{text}");
    assert!(
        text.contains("A recipient marked 5.7.30 could not be reached that way"),
        "{text}"
    );
    // Another failure of a flagged message: no word of 5.7.30.
    let other = rendered(&report(&envelope, Kind::Failure));
    assert!(other.contains("required TLS"), "{other}");
    assert!(!other.contains("5.7.30"), "{other}");
    // An unflagged message: no REQUIRETLS paragraph, the whole message back.
    let plain = Envelope {
        requiretls: false,
        ..envelope
    };
    let text = rendered(&report(&plain, Kind::Failure));
    assert!(!text.contains("REQUIRETLS"), "{text}");
    assert!(text.contains("Content-Type: message/rfc822\r\n"), "{text}");
}

#[test]
fn a_flagged_notice_that_fails_in_turn_is_never_bounced() {
    // The notice of a flagged message is itself flagged and from <>: if it
    // cannot go either, nobody is told (RFC 5321 §4.5.5, RFC 8689 §5).
    let notice = flagged("", false);
    for kind in [Kind::Failure, Kind::Delay] {
        let report = report(&notice, kind);
        assert!(report.render(ORIGINAL, "B").is_none(), "{kind:?}");
        assert!(report
            .withheld()
            .is_some_and(|why| why.contains("the sender is <>")));
    }
}
