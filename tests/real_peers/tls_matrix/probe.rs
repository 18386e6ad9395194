//! `tlsrelay probe` against the matrix's receivers.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::receivers::{start_receivers, Certs, Kind, ALL};
use super::relay::{relay_config, relay_files};
use super::{cells, Cell};
use crate::support::postfix::run_bounded;
use crate::support::prediction::{self, differences, Case};

/// `tlsrelay probe DOMAIN -c FILE` (it needs no running relay).
pub(super) fn probe(config: &Path, domain: &str) -> String {
    let output = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
            .args(["probe", domain, "-c"])
            .arg(config)
            .env_remove("RUST_LOG"),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "probe {domain}: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `probe` against some of the matrix's receivers, under the matrix's
/// connectors plus one whose `tls_domains` names the wrong-name
/// receiver's certificate: the facts (STARTTLS, TLS version, chain, name,
/// the levels that would accept) and the verdict, as text; nothing sent.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn probe_reports_the_facts_and_verdicts_of_real_receivers() {
    let kinds = [
        Kind::Tls13,
        Kind::Tls12,
        Kind::NoStartTls,
        Kind::WrongName,
        Kind::SelfSigned,
        Kind::Expired,
        Kind::Tls10,
        Kind::Stall,
    ];
    let certs = Certs::new();
    let cells = cells(&kinds);
    let receivers = start_receivers(&kinds, &cells, &certs);
    let mut config = relay_config(&cells, &receivers);
    config.push_str(&format!(
        "[[outbound]]\nname = \"partner\"\nrecipient_domains = [\"partner.test\"]\n\
         smarthosts = [\"{}\"]\ntls = \"verify-domain\"\nca_file = \"ca.pem\"\n\
         tls_domains = [\"mx.wrong.test\"]\n",
        receivers[&Kind::WrongName].addr()
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, contents) in relay_files(&certs) {
        std::fs::write(dir.path().join(name), contents).expect("write relay file");
    }
    let config_file = dir.path().join("tlsrelay.toml");
    std::fs::write(&config_file, &config).expect("write config");

    let levels = "  Levels accepting   ";
    let verdict = "  Verdict            ";
    let cases: [(&str, &[String]); 11] = [
        (
            "verify-host-tls13.test",
            &[
                "Connector    \"verify-host-tls13\"\nTLS level    verify-host\n".into(),
                format!("\nHost {}\n", receivers[&Kind::Tls13].addr()),
                "  STARTTLS offered   yes\n".into(),
                "  TLS                TLSv1.3 TLS_".into(),
                "  Certificate 1      CN=mx.good.test (issuer CN=tlsrelay matrix CA, O=tlsrelay tests; expires ".into(),
                "  Chain              verified\n  Name               matches\n".into(),
                "  Domain             no: certificate for mx.good.test not valid for verify-host-tls13.test or its subdomains\n".into(),
                format!("{levels}opportunistic, required, verify-ca, verify-host\n"),
                format!("{verdict}would deliver with TLSv1.3, verified\n"),
            ],
        ),
        (
            "verify-domain-tls12.test",
            &[
                "  TLS                TLSv1.2 TLS_ECDHE_".into(),
                format!("{levels}opportunistic, required, verify-ca, verify-host, verify-domain\n"),
                format!("{verdict}would deliver with TLSv1.2, verified\n"),
            ],
        ),
        (
            "required-nostarttls.test",
            &[
                "  STARTTLS offered   no\n".into(),
                format!("{levels}none; opportunistic delivers in plaintext\n"),
                format!("{verdict}would defer: STARTTLS not offered\n"),
            ],
        ),
        (
            "opportunistic-nostarttls.test",
            &[format!("{verdict}would deliver in plaintext\n")],
        ),
        (
            "verify-host-wrong-name.test",
            &[
                "  Name               no: certificate is not valid for 127.0.0.1 (it names: mx.wrong.test)\n".into(),
                format!("{levels}opportunistic, required, verify-ca\n"),
                format!("{verdict}would defer: certificate is not valid for 127.0.0.1"),
            ],
        ),
        (
            "partner.test",
            &[
                "  Name               no: certificate is not valid for 127.0.0.1 (it names: mx.wrong.test)\n  Domain             matches\n".into(),
                format!("{levels}opportunistic, required, verify-ca, verify-domain\n"),
                format!("{verdict}would deliver with TLSv1.3, verified\n"),
            ],
        ),
        (
            "pinned-self-signed.test",
            &[
                "  Chain              no: self-signed certificate (CN=mx.good.test)".into(),
                format!("{levels}opportunistic, required, pinned\n"),
                format!("{verdict}would deliver with TLSv1.3, pinned certificate matched\n"),
            ],
        ),
        (
            "verify-ca-expired.test",
            &[
                "  Chain              no: expired\n".into(),
                format!("{levels}opportunistic, required\n"),
                format!("{verdict}would defer: certificate not trusted: expired\n"),
            ],
        ),
        (
            "required-tls10.test",
            &[
                "  TLS                failed: handshake: TLS alert from the peer: protocol version\n".into(),
                format!("{levels}none; opportunistic tries TLS 1.2 only, then plaintext\n"),
                format!("{verdict}would defer: TLS failed: handshake: TLS alert from the peer: protocol version\n"),
            ],
        ),
        (
            "opportunistic-tls10.test",
            &[format!(
                "{verdict}would deliver in plaintext, after TLS failed on every rung above\n"
            )],
        ),
        (
            "required-stall.test",
            &[
                "  TLS                failed: handshake stalled past 4s\n".into(),
                format!("{verdict}would defer: TLS failed: handshake stalled past 4s\n"),
            ],
        ),
    ];
    let mut wrong = Vec::new();
    for (domain, expected) in cases {
        let report = probe(&config_file, domain);
        for line in expected {
            if !report.contains(line.as_str()) {
                wrong.push(format!("probe {domain}: missing {line:?} in:\n{report}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for receiver in receivers.values() {
        if let Some(postfix) = receiver.postfix() {
            assert!(postfix.delivered().is_empty(), "probe sends no mail");
            assert!(
                !postfix.log().contains("client="),
                "probe starts no transaction"
            );
        }
    }
}

/// Issue 14's acceptance: probe climbs delivery's ladder, so for every
/// cell of the matrix its verdict is what delivery then does, against the
/// same receivers under the same configuration: the same TLS version and
/// verification note, the same plaintext reason, the same 4.7.x status
/// and reason. Each cell is probed first, then one message is delivered;
/// then the opportunistic cells again with `opportunistic_fallback = false`
/// (where the old probe promised plaintext that delivery refuses).
#[test]
#[ignore = "real peer: run by .ci/run"]
fn probe_predicts_what_delivery_does_in_every_cell() {
    let certs = Certs::new();
    let cells = cells(&ALL);
    let receivers = start_receivers(&ALL, &cells, &certs);
    let config = relay_config(&cells, &receivers);
    let mut wrong = probe_and_deliver(&certs, &config, &cells);
    let no_fallback = config.replace(
        "[delivery]\n",
        "[delivery]\nopportunistic_fallback = false\n",
    );
    let opportunistic: Vec<Cell> = cells
        .iter()
        .filter(|c| c.level == "opportunistic")
        .cloned()
        .collect();
    wrong.extend(
        probe_and_deliver(&certs, &no_fallback, &opportunistic)
            .into_iter()
            .map(|w| format!("(opportunistic_fallback = false) {w}")),
    );
    assert!(
        wrong.is_empty(),
        "{} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Probes, then delivers to, each of `cells` (all at once) in-process
/// under `config`; returns the cells where the two differ.
fn probe_and_deliver(certs: &Certs, config: &str, cells: &[Cell]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, contents) in relay_files(certs) {
        std::fs::write(dir.path().join(name), contents).expect("write relay file");
    }
    let config_file = dir.path().join("tlsrelay.toml");
    std::fs::write(&config_file, config).expect("write config");
    let cases: Vec<Case> = cells
        .iter()
        .map(|cell| Case {
            name: cell.name(),
            domain: cell.domain(),
            recipient: cell.recipient(),
            content: format!(
                "{}\r\n\r\nthe secret of cell {}\r\n",
                cell.subject(),
                cell.name()
            ),
        })
        .collect();
    differences(&prediction::probe_and_deliver(&config_file, &cases))
}
