//! A policy that cannot be had is no policy (RFC 8461 §3.3, the
//! contract's fetch rules). Every domain's one MX host, `mx.DOMAIN`, is a
//! Postfix with a good certificate, and every policy the server could give
//! names only `mx-other.DOMAIN`, in `enforce` mode: applied, it would
//! refuse that MX (the `control` cell shows it does); treated as no
//! policy, the mail goes. A redirect (to a host serving that policy
//! properly, which must not be asked), a 404, `text/html`, a body over 64
//! KiB, a policy without `max_age`, a certificate that does not name
//! `mta-sts.DOMAIN`: each delivered, logged as `fetch-error` / `invalid`,
//! and counted in TLS-RPT with its result type on every session made.

use super::check::{self, Mail};
use super::lab::{lab_port, start_relay, zone, Certs, Mx, Rx};
use crate::support::dns::DnsServer;
use crate::support::policy_server::{policy, Answer, PolicyServer};

/// (domain label, sts word, `mta-sts policy` result, TLS-RPT result type).
const CELLS: [(&str, &str, &str, &str); 7] = [
    (
        "redirect",
        "fetch-error",
        "fetch-error",
        "sts-policy-fetch-error",
    ),
    (
        "notfound",
        "fetch-error",
        "fetch-error",
        "sts-policy-fetch-error",
    ),
    (
        "html",
        "fetch-error",
        "fetch-error",
        "sts-policy-fetch-error",
    ),
    (
        "oversize",
        "fetch-error",
        "fetch-error",
        "sts-policy-fetch-error",
    ),
    ("malformed", "invalid", "invalid", "sts-policy-invalid"),
    (
        "badcert",
        "fetch-error",
        "fetch-error",
        "sts-webpki-invalid",
    ),
    ("control", "mx-mismatch", "fetched", ""),
];

pub fn addresses() -> Vec<String> {
    super::lab_addresses(CELLS.len())
}

/// What the server answers for `label`.test (`port`: the server's).
fn answer(label: &str, port: u16) -> Option<Answer> {
    let domain = format!("{label}.test");
    let refusing = policy("enforce", &[&format!("mx-other.{domain}")], 86400);
    let mut answer = Answer::policy(&refusing);
    match label {
        "redirect" => {
            answer.status = 301;
            answer.location = Some(format!(
                "https://mta-sts.target.test:{port}/.well-known/mta-sts.txt"
            ));
        }
        "notfound" => return None,
        "html" => answer.content_type = "text/html".into(),
        "oversize" => answer.pad = 70 * 1024,
        "malformed" => {
            answer.body = format!("version: STSv1\r\nmode: enforce\r\nmx: mx-other.{domain}\r\n");
        }
        _ => {}
    }
    Some(answer)
}

pub fn run() {
    let certs = Certs::new();
    let port = lab_port();
    let hosts: Vec<Mx> = CELLS
        .iter()
        .enumerate()
        .map(|(i, (label, ..))| {
            let (ip, back) = super::lab_address(i);
            let domain = format!("{label}.test");
            Mx::start(
                &certs,
                &domain,
                &format!("mx.{domain}"),
                Rx::Good,
                (&ip, &back),
                port,
            )
        })
        .collect();
    let mut names: Vec<String> = CELLS
        .iter()
        .filter(|c| c.0 != "badcert")
        .map(|c| format!("mta-sts.{}.test", c.0))
        .collect();
    names.push("mta-sts.target.test".into());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (chain, key) = certs.policy_chain(&refs);
    let (bad_chain, bad_key) = certs.chain(&["mta-sts.elsewhere.test"]);
    let server = PolicyServer::start(
        &chain,
        &key,
        Some((&bad_chain, &bad_key, &["mta-sts.badcert.test"])),
    );
    let mut records = String::new();
    for ((label, ..), mx) in CELLS.iter().zip(&hosts) {
        let domain = format!("{label}.test");
        records.push_str(&zone(&domain, &[(10, mx)], Some("20261207f")));
        if let Some(answer) = answer(label, server.port) {
            server.answer(&format!("mta-sts.{domain}"), &answer);
        }
    }
    let target = policy("enforce", &["mx-other.redirect.test"], 86400);
    server.answer("mta-sts.target.test", &Answer::policy(&target));
    records.push_str("mta-sts.target.test. A 127.0.0.1\n");
    let dns = DnsServer::start(&records);
    super::check_lab(&hosts.iter().collect::<Vec<_>>(), port, &server, &certs);
    let before: Vec<usize> = hosts.iter().map(Mx::settled_connections).collect();

    let relay = start_relay(&certs, port, dns.addr, server.port);
    let mails: Vec<Mail> = CELLS
        .iter()
        .map(|c| Mail::new(c.0, &format!("{}.test", c.0)))
        .collect();
    let ids = check::send(&relay, &mails);
    let gone = check::settle(&relay, &ids, 1);

    let mut failures = Vec::new();
    for (i, (label, word, result, rpt)) in CELLS.iter().enumerate() {
        let mut wrong = Vec::new();
        let mail = &mails[i];
        let mx = &hosts[i];
        let made = mx.settled_connections() - before[i];
        let stored = mx.stored(&mail.secret(), *label != "control");
        let words = check::sts_words(&relay, &ids[i]);
        if words.last().map(String::as_str) != Some(*word) {
            wrong.push(format!("sts words {words:?}, want last {word}"));
        }
        let results = check::policy_results(&relay, &mail.domain);
        if results.first().map(String::as_str) != Some(*result) {
            wrong.push(format!("mta-sts policy results {results:?}, want {result}"));
        }
        if *label == "control" {
            // The same policy, served properly: enforced, the MX refused.
            if gone[&ids[i]] || made != 0 || !stored.is_empty() {
                wrong.push(format!(
                    "control: gone {}, {made} connections, stored {stored:?}",
                    gone[&ids[i]]
                ));
            }
            wrong.extend(check::check_deferred(&relay, mail, None));
        } else {
            if !gone[&ids[i]] || stored != [true] {
                wrong.push(format!("not delivered once over TLS: stored {stored:?}"));
            }
            let failed = Some((*rpt, ""));
            wrong.extend(check::check_tls_rpt(
                &relay,
                &mail.domain,
                "sts",
                (0, made),
                failed,
            ));
        }
        check::note(&mut failures, label, &ids[i], &wrong);
    }
    if server.requests("mta-sts.target.test") != 0 {
        failures.push("the redirect was followed".into());
    }
    let requests = format!("requests {:?}", server.all_requests());
    check::assert_all_right(&failures, &relay, &requests);
}
