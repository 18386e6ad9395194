//! Issue 16's MTA-STS acceptance (RFC 8461, DESIGN.md §5b) against real
//! peers, written against the contract of the brief: the relay
//! reads `[mta_sts] ca_file` and `https_port`; a deferral for MTA-STS
//! waits with `4.7.5` (`4.7.4` when STARTTLS is missing) and a reason
//! starting `MTA-STS`; attempt lines carry `sts=WORD`; policy lookups log
//! `mta-sts policy` with a `result`; `tlsrelay tls-rpt show` and `tlsrelay
//! report --json` print what the contract says.
//!
//! The peers: a policy server on OpenSSL (`support::policy_server`,
//! Python's `ssl` and `http.server`), the in-process test DNS
//! (`support::dns`), Postfix receivers with test-CA, wrong-name and
//! self-signed certificates, the STARTTLS-stripping proxy, a receiver
//! without STARTTLS; each MX host on its own address in a network
//! namespace of the test's own (`lab`). Every cell is asserted by what the
//! far side got: messages stored (and over TLS or not), connections made,
//! mail commands seen in plaintext.
//!
//! * `harness`: the lab itself, without the feature: the policy server
//!   answers curl (`--cacert`) as scripted, the receivers take mail sent
//!   to them directly.
//! * `enforce`: enforce and testing cells, then `report --json`.
//! * `fetch`: redirect, 404, wrong content type, oversize, malformed,
//!   a certificate not naming `mta-sts.DOMAIN`: all as no policy.
//! * `cache`: the policy server down, a relay restart, a changed TXT id
//!   whose fetch fails: the cached policy still enforced.

#[path = "mta_sts/cache.rs"]
mod cache;
#[path = "mta_sts/check.rs"]
pub(crate) mod check;
#[path = "mta_sts/enforce.rs"]
mod enforce;
#[path = "mta_sts/fetch.rs"]
mod fetch;
#[path = "mta_sts/harness.rs"]
mod harness;
#[path = "mta_sts/lab.rs"]
mod lab;

use crate::support::dane_lab::in_namespace;
use crate::support::policy_server::PolicyServer;

/// The receiver's and (for a proxy) its Postfix's address of MX host `i`.
fn lab_address(i: usize) -> (String, String) {
    (
        format!("127.0.0.{}", 10 + i),
        format!("127.0.0.{}", 100 + i),
    )
}

/// Every address of `n` MX hosts.
fn lab_addresses(n: usize) -> Vec<String> {
    (0..n)
        .flat_map(|i| {
            let (a, b) = lab_address(i);
            [a, b]
        })
        .collect()
}

/// Runs `lab` in a new network namespace with `addresses` on `lo`.
fn in_lab(addresses: Vec<String>, lab: fn()) {
    in_namespace(
        &addresses.iter().map(String::as_str).collect::<Vec<_>>(),
        lab,
    );
}

/// The lab works before the relay is asked anything: every receiver
/// answers as it should and the policy server serves `mta-sts.*` over a
/// certificate curl trusts through the lab CA alone.
fn check_lab(hosts: &[&lab::Mx], port: u16, server: &PolicyServer, certs: &lab::Certs) {
    for mx in hosts {
        mx.check(port);
    }
    harness::curl_fetch(server, certs, None);
}

#[test]
#[ignore = "real peers: Postfix, python3, curl, a network namespace (root); run by .ci/run"]
fn mta_sts_lab_works() {
    in_lab(harness::addresses(), harness::run);
}

#[test]
#[ignore = "real peers: Postfix, python3, a network namespace (root); run by .ci/run"]
fn mta_sts_enforce_and_testing_against_real_receivers_then_report() {
    in_lab(enforce::addresses(), enforce::run);
}

#[test]
#[ignore = "real peers: Postfix, python3, a network namespace (root); run by .ci/run"]
fn mta_sts_policy_that_cannot_be_had_is_no_policy() {
    in_lab(fetch::addresses(), fetch::run);
}

#[test]
#[ignore = "real peers: Postfix, python3, a network namespace (root); run by .ci/run"]
fn mta_sts_cached_policy_outlives_its_server_a_restart_and_a_failed_refetch() {
    in_lab(cache::addresses(), cache::run);
}
