//! A Postfix receiver that requires our client certificate.

use std::collections::BTreeMap;
use std::time::Duration;

use tlsrelay::queue::state::Status;

use super::receivers::{first_received, Certs, Kind};
use super::relay::{
    attempt_outcomes, relay_config, send_all, start_relay, wait_until_settled, Settled,
};
use super::{recipient, subject};
use crate::support::postfix::PostfixOptions;

/// A Postfix receiver that requires a client certificate
/// (`smtpd_tls_req_ccert`, which needs `smtpd_tls_security_level =
/// encrypt`) from the test CA, which also issued tlsrelay's `[tls] cert`:
/// it takes the message of the connector with `client_cert = true`, and
/// refuses the others right after the TLS 1.3 handshake (issue 12 item
/// 6). `verify-host` without a certificate then waits with 4.7.1 "the
/// server wants a client certificate"; `opportunistic` takes that as a
/// failed rung and goes down the ladder (TLS 1.2 only, then plaintext),
/// where this Postfix, insisting on TLS, says 530: the message waits
/// (4.7.0), never bounced, never sent in plaintext.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn a_receiver_requiring_a_client_certificate_takes_mail_only_with_ours() {
    let certs = Certs::new();
    let Some(pem) = certs.for_kind(Kind::Tls13) else {
        unreachable!("Tls13 receivers have a certificate")
    };
    let postfix = PostfixOptions::new()
        .hostname("mx.mtls.test")
        .starttls(&pem.cert, &pem.key)
        .maildir_domains(&["with-cert.test", "without-cert.test", "opportunistic.test"])
        .main_cf("smtpd_tls_received_header", "yes")
        .main_cf("smtpd_tls_security_level", "encrypt")
        .main_cf("smtpd_tls_req_ccert", "yes")
        .main_cf("smtpd_tls_CAfile", &certs.ca_file().display().to_string())
        .start();
    let mut config = relay_config(&[], &BTreeMap::new());
    for (name, level, client_cert) in [
        ("with-cert", "verify-host", true),
        ("without-cert", "verify-host", false),
        ("opportunistic", "opportunistic", false),
    ] {
        config.push_str(&format!(
            "[[outbound]]\nname = \"{name}\"\nrecipient_domains = [\"{name}.test\"]\n\
             smarthosts = [\"{}\"]\ntls = \"{level}\"\nca_file = \"ca.pem\"\n\
             client_cert = {client_cert}\n",
            postfix.smtp_addr()
        ));
    }
    let relay = start_relay(&config, &certs);
    let probed = super::probe::probe(&relay.dir().join("tlsrelay.toml"), "without-cert.test");
    assert!(
        probed
            .contains("  Verdict            would defer: the server wants a client certificate (")
            && probed.contains("No client certificate presented"),
        "probe does not predict the refusal:\n{probed}"
    );
    let probed = super::probe::probe(&relay.dir().join("tlsrelay.toml"), "opportunistic.test");
    assert!(
        probed.contains(
            "  TLS                failed: refused right after the TLS handshake: TLSv1.3 "
        ) && probed.contains(
            "  Verdict            would deliver in plaintext, after TLS failed on every rung above"
        ),
        "probe does not predict the ladder:\n{probed}"
    );
    let names = [
        "with-cert".to_string(),
        "without-cert".to_string(),
        "opportunistic".to_string(),
    ];
    let ids = send_all(&relay, &names);
    let states = wait_until_settled(&relay, &ids, Duration::from_secs(60));
    let log = postfix.log();
    let context = format!("Postfix log:\n{log}\nrelay log:\n{}", relay.log());

    assert!(
        matches!(states[0], Settled::Gone),
        "{:?}\n{context}",
        states[0]
    );
    let delivered = postfix.delivered();
    let with = delivered
        .iter()
        .find(|m| m.contains(&subject("with-cert")))
        .unwrap_or_else(|| panic!("with-cert never arrived\n{context}"));
    let header = first_received(with);
    assert!(
        header.contains("(using TLSv1.3 with cipher ")
            && header.contains(
                "(Client CN \"relay.example.test\", Issuer \"tlsrelay matrix CA\" (verified OK))"
            ),
        "Postfix should have verified our client certificate: {header}\n{context}"
    );
    assert!(
        log.contains("Trusted TLS connection established from"),
        "{context}"
    );

    let Settled::Queued(state) = &states[1] else {
        panic!("without-cert left the queue\n{context}")
    };
    let without = &state.recipients[0];
    let why = without.reason.as_deref().unwrap_or("");
    assert!(
        without.status == Status::Pending
            && without.code.map(|c| c.to_string()).as_deref() == Some("4.7.1")
            && why.contains("the server wants a client certificate (")
            && why.contains("No client certificate presented"),
        "without-cert should wait with 4.7.1 and Postfix's reason: {without:?}\n{context}"
    );
    // The attempt is logged like any other: the deferral and why.
    let outcomes = attempt_outcomes(&relay, &ids[1]);
    assert!(
        outcomes.len() == 1
            && outcomes[0].starts_with("deferred: the server wants a client certificate (")
            && outcomes[0].contains("TLSv1.3 "),
        "one attempt line with its TLS outcome: {outcomes:?}\n{context}"
    );
    assert!(
        log.contains(
            "NOQUEUE: abort: TLS from unknown[127.0.0.1]: No client certificate presented"
        ),
        "{context}"
    );

    // Opportunistic: down the ladder, and Postfix's 530 on the plaintext
    // rung keeps the message waiting.
    let Settled::Queued(state) = &states[2] else {
        panic!("opportunistic left the queue (bounced?)\n{context}")
    };
    let opportunistic = &state.recipients[0];
    assert!(
        opportunistic.status == Status::Pending
            && opportunistic.code.map(|c| c.to_string()).as_deref() == Some("4.7.0")
            && opportunistic
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("insists on TLS"),
        "opportunistic should wait, not bounce: {opportunistic:?}\n{context}"
    );
    let outcomes = attempt_outcomes(&relay, &ids[2]);
    assert!(
        outcomes.len() == 3
            && outcomes[0].starts_with(
                "TLS failed on rung Modern (refused right after the TLS handshake: TLSv1.3 "
            )
            && outcomes[1].starts_with("TLS failed on rung Tls12 (")
            && outcomes[2] == "plaintext (TLS failed on higher rungs)",
        "the ladder, rung by rung: {outcomes:?}\n{context}"
    );
    for name in ["without-cert", "opportunistic"] {
        assert!(
            !log.contains(&recipient(name))
                && !delivered.iter().any(|m| m.contains(&subject(name))),
            "{name} reached Postfix\n{context}"
        );
    }
    // One plaintext MAIL: the opportunistic ladder's last rung, which
    // Postfix refused (530) before any recipient or content.
    let plaintext: Vec<String> = postfix
        .sessions()
        .iter()
        .filter(|s| s.plaintext_mail())
        .map(|s| format!("{s:?}"))
        .collect();
    assert_eq!(plaintext.len(), 1, "{plaintext:?}\n{context}");
}
