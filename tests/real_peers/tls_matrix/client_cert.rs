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
/// refuses the other one after the handshake, which then waits in the
/// queue: it never went out in plaintext.
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
        .maildir_domains(&["with-cert.test", "without-cert.test"])
        .main_cf("smtpd_tls_received_header", "yes")
        .main_cf("smtpd_tls_security_level", "encrypt")
        .main_cf("smtpd_tls_req_ccert", "yes")
        .main_cf("smtpd_tls_CAfile", &certs.ca_file().display().to_string())
        .start();
    let mut config = relay_config(&[], &BTreeMap::new());
    for (name, client_cert) in [("with-cert", true), ("without-cert", false)] {
        config.push_str(&format!(
            "[[outbound]]\nname = \"{name}\"\nrecipient_domains = [\"{name}.test\"]\n\
             smarthosts = [\"{}\"]\ntls = \"verify-host\"\nca_file = \"ca.pem\"\n\
             client_cert = {client_cert}\n",
            postfix.smtp_addr()
        ));
    }
    let relay = start_relay(&config, &certs);
    let names = ["with-cert".to_string(), "without-cert".to_string()];
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
        without.status == Status::Pending && why.contains("No client certificate presented"),
        "without-cert should wait with Postfix's reason: {without:?}\n{context}"
    );
    // The attempt is logged like any other: the TLS it had, and the refusal.
    let outcomes = attempt_outcomes(&relay, &ids[1]);
    assert!(
        outcomes.len() == 1 && outcomes[0].starts_with("TLSv1.3 "),
        "one attempt line with its TLS outcome: {outcomes:?}\n{context}"
    );
    assert!(
        log.contains(
            "NOQUEUE: abort: TLS from unknown[127.0.0.1]: No client certificate presented"
        ),
        "{context}"
    );
    assert!(
        !log.contains(&recipient("without-cert"))
            && !delivered
                .iter()
                .any(|m| m.contains(&subject("without-cert"))),
        "without-cert reached Postfix\n{context}"
    );
    let plaintext = postfix
        .sessions()
        .iter()
        .filter(|s| s.plaintext_mail())
        .count();
    assert_eq!(plaintext, 0, "{context}");
}
