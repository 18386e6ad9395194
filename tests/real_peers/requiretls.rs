//! Issue 17's REQUIRETLS acceptance (RFC 8689, DESIGN.md §5b), outbound:
//! a message whose sender asked for REQUIRETLS goes only to a next hop
//! that is authenticated (a connector's smarthost, an MX named by an
//! MTA-STS `enforce` policy, an MX from a DNSSEC-secure answer), whose
//! certificate is verified and which offers REQUIRETLS, and it passes the
//! parameter on; otherwise it is returned at once with 5.7.30, in a
//! notice that itself travels under REQUIRETLS and carries the
//! original's headers only. Written against the contract of the issue's
//! brief: `requiretls=WORD` on `delivery attempt` lines, `requiretls=`
//! on `message accepted`, the `failed` line's `status=5.7.30` and reason
//! `REQUIRETLS:…`, `report --json`'s `requiretls_delivered` and
//! `requiretls_returned`.
//!
//! The peers, each MX host or smarthost on its own address of one port in
//! a network namespace of the test's own: a receiver on OpenSSL that
//! offers REQUIRETLS (`support::requiretls_receiver`, since Postfix 3.7
//! does not), Postfix with a verified certificate, self-signed and
//! plaintext-only receivers, the STARTTLS-stripping proxy; the test DNS,
//! the MTA-STS policy server, nsd with a signed tree. Flagged messages
//! come from Python's smtplib over the relay's STARTTLS. Every cell is
//! judged by what the far sides recorded: connections, every command
//! line in plaintext and over TLS, the MAIL line, the content.
//!
//! * `harness`: the lab itself, with unflagged mail only (passes
//!   without the feature);
//! * `connectors`: cells over `[[outbound]]` smarthosts, then
//!   `report --json`;
//! * `mx`: MX routing with MTA-STS `enforce`, `testing` and none, and
//!   `TLS-Required: No`, then `report --json`;
//! * `dropped`: the notice of a returned message whose sender's domain
//!   offers no REQUIRETLS is dropped, not bounced;
//! * `dane`: MX routing under DNSSEC: DANE `3 1 1`, encrypt-only, a
//!   secure MX verified by a connector's CA, an insecure zone.
//!
//! `cells` says what a cell is, `lab` the kinds of hop, `client` the
//! smtplib that submits, `run` the run of a cell table, `check` what is
//! asked of each cell.

#[path = "requiretls/cells.rs"]
mod cells;
#[path = "requiretls/check.rs"]
mod check;
#[path = "requiretls/client.rs"]
mod client;
#[path = "requiretls/connectors.rs"]
mod connectors;
#[path = "requiretls/dane.rs"]
mod dane;
#[path = "requiretls/dropped.rs"]
mod dropped;
#[path = "requiretls/harness.rs"]
mod harness;
#[path = "requiretls/lab.rs"]
mod lab;
#[path = "requiretls/mx.rs"]
mod mx;
#[path = "requiretls/run.rs"]
mod run;

use crate::support::dane_lab::in_namespace;

/// Runs `lab` in a network namespace of its own with the addresses of
/// `cells`' hops (and the sender's receiver) on `lo`.
fn in_lab(cells: &[cells::Cell], lab: fn()) {
    let addresses = cells::addresses(cells);
    in_namespace(
        &addresses.iter().map(String::as_str).collect::<Vec<_>>(),
        lab,
    );
}

#[test]
#[ignore = "real peers: Postfix, python3, a network namespace (root); run by .ci/run"]
fn requiretls_lab_works() {
    in_lab(&harness::CELLS, harness::run);
}

#[test]
#[ignore = "real peers: Postfix, python3, a network namespace (root); run by .ci/run"]
fn requiretls_over_connectors() {
    in_lab(&connectors::CELLS, connectors::run);
}

#[test]
#[ignore = "real peers: Postfix, python3, a network namespace (root); run by .ci/run"]
fn requiretls_over_mx_with_and_without_mta_sts() {
    in_lab(&mx::CELLS, mx::run);
}

#[test]
#[ignore = "real peers: Postfix, python3, a network namespace (root); run by .ci/run"]
fn requiretls_notice_that_cannot_go_is_dropped() {
    in_lab(&dropped::CELLS, dropped::run);
}

#[test]
#[ignore = "real peers: python3, nsd, ldns, a network namespace (root); run by .ci/run"]
fn requiretls_over_mx_under_dnssec_and_dane() {
    in_lab(&dane::CELLS, dane::run);
}
