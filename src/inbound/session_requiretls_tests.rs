//! REQUIRETLS (RFC 8689) on the inbound session: offered and accepted only
//! on a TLS session, stored with the envelope, refused in plaintext.

use super::*;

/// A TLS session as the driver reports it after a handshake.
fn secured(d: &mut Driver) {
    d.send(b"EHLO c\r\nSTARTTLS\r\n");
    d.session.tls_established(TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS_AES_256_GCM_SHA384".into(),
        group: None,
        client_cert: ClientCert::None,
    });
}

/// Sends one transaction from `mail` (the whole MAIL line) and returns the
/// flag the queued envelope carries.
fn queued_flag(d: &mut Driver, mail: &str) -> bool {
    let before = d.queued.len();
    let replies = d.codes(&format!(
        "{mail}\r\nRCPT TO:<x@example.test>\r\nDATA\r\nhi\r\n.\r\n"
    ));
    assert_eq!(code_list(&replies), ["250", "250", "354", "250"], "{mail}");
    assert_eq!(d.queued.len(), before + 1);
    d.queued[before].0.requiretls
}

#[test]
fn ehlo_offers_requiretls_only_once_tls_is_up() {
    let mut d = Driver::new("192.0.2.1");
    let plain = d.send(b"EHLO c\r\n");
    assert!(plain.contains("250 STARTTLS\r\n"), "{plain}");
    assert!(!plain.contains("REQUIRETLS"), "{plain}");
    secured(&mut d);
    let tls = d.send(b"EHLO c\r\n");
    assert!(tls.ends_with("250-DSN\r\n250 REQUIRETLS\r\n"), "{tls}");
    assert!(!tls.contains("STARTTLS"), "{tls}");
}

#[test]
fn mail_requiretls_in_plaintext_is_refused_and_logged() {
    let mut d = Driver::new("192.0.2.1");
    d.send(b"EHLO c\r\n");
    assert_eq!(
        d.codes("MAIL FROM:<a@sender.test> REQUIRETLS\r\n"),
        ["530 5.7.10 REQUIRETLS needs a TLS session: issue STARTTLS first"]
    );
    assert!(d.session.envelope().is_none());
    let refusal = d.refusals.last().cloned();
    assert_eq!(
        refusal.map(|r| (r.context.command, r.context.address, r.reply)),
        Some((
            "MAIL".to_string(),
            Some("<a@sender.test>".to_string()),
            "530 5.7.10 REQUIRETLS needs a TLS session: issue STARTTLS first".to_string()
        ))
    );
    // RCPT and DATA that were pipelined behind it find no transaction.
    assert_eq!(
        code_list(&d.codes("RCPT TO:<x@example.test>\r\nDATA\r\n")),
        ["503", "503"]
    );
    assert!(d.queued.is_empty());
    // The session goes on; a MAIL without the option is taken unflagged.
    assert!(!queued_flag(&mut d, "MAIL FROM:<a@sender.test>"));
}

#[test]
fn mail_requiretls_on_tls_flags_the_envelope_and_rset_clears_it() {
    let mut d = Driver::new("192.0.2.1");
    secured(&mut d);
    d.send(b"EHLO c\r\n");
    assert!(queued_flag(&mut d, "MAIL FROM:<a@sender.test> REQUIRETLS"));
    assert!(!queued_flag(&mut d, "MAIL FROM:<a@sender.test>"));
    // With other parameters, in any order, and kept next to them.
    assert!(queued_flag(
        &mut d,
        "MAIL FROM:<a@sender.test> SMTPUTF8 REQUIRETLS RET=HDRS ENVID=e1"
    ));
    let envelope = &d.queued[2].0;
    assert!(envelope.smtputf8);
    assert_eq!(envelope.envid.as_deref(), Some("e1"));
    // RSET ends the transaction and its flag with it.
    assert_eq!(
        code_list(&d.codes("MAIL FROM:<a@sender.test> REQUIRETLS\r\nRSET\r\n")),
        ["250", "250"]
    );
    assert!(!queued_flag(&mut d, "MAIL FROM:<a@sender.test>"));
}
