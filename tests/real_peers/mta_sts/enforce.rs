//! `enforce` and `testing` against real receivers, and `report --json`
//! after that mixed run. One relay, one policy server, one domain per
//! cell, one receiver per MX host; all cells sent at once, one attempt
//! each, then every deferred one retried once (`queue retry --all`): a
//! failed TLS attempt under `enforce` must not teach the relay to fall
//! back to plaintext. Then each cell is checked against what its
//! receivers saw, `queue list`, the `sts=` log word, `tls-rpt show`
//! (counts equal to the connections the receivers counted) and the
//! transit report (messages per method equal to what the receivers
//! stored, `plaintext_domains`).

use std::collections::BTreeSet;

use serde_json::Value;

use super::check::{self, Mail};
use super::lab::{lab_port, start_relay, zone, Certs, Mx, Rx};
use crate::support::dns::DnsServer;
use crate::support::policy_server::{policy, Answer, PolicyServer};
use crate::support::relay::Relay;

/// What a cell must come to.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Stored by host `.0` of the cell, over TLS (`.1`) or not.
    Delivered(usize, bool),
    /// Waiting with this status code.
    Deferred(&'static str),
}

struct Cell {
    name: &'static str,
    /// `enforce`, `testing`, or "" for no policy at all.
    mode: &'static str,
    /// (preference, host label, receiver); the host is LABEL.DOMAIN.
    hosts: &'static [(u16, &'static str, Rx)],
    /// The policy's `mx` patterns, `{}` standing for the domain.
    patterns: &'static [&'static str],
    expect: Expect,
    /// The `sts=` word of the last attempt.
    sts: &'static str,
    /// Also logged by an earlier attempt line (e.g. `mx-mismatch`).
    sts_also: Option<&'static str>,
    /// Failed sessions in TLS-RPT: (result type, index of the host).
    failure: Option<(&'static str, usize)>,
}

use Expect::{Deferred, Delivered};
use Rx::{Good, Plain, SelfSigned, Strip, WrongName};

#[rustfmt::skip]
const CELLS: [Cell; 9] = [
    Cell { name: "enf-good", mode: "enforce", hosts: &[(10, "mx", Good)], patterns: &["*.{}"],
        expect: Delivered(0, true), sts: "enforced", sts_also: None, failure: None },
    Cell { name: "enf-mismatch", mode: "enforce", hosts: &[(5, "mx1", Good), (10, "mx2", Good)],
        patterns: &["mx2.{}"], expect: Delivered(1, true), sts: "enforced",
        sts_also: Some("mx-mismatch"), failure: Some(("*", 0)) },
    Cell { name: "enf-wrongname", mode: "enforce", hosts: &[(10, "mx", WrongName)], patterns: &["mx.{}"],
        expect: Deferred("4.7.5"), sts: "failed", sts_also: None,
        failure: Some(("certificate-host-mismatch", 0)) },
    Cell { name: "enf-selfsigned", mode: "enforce", hosts: &[(10, "mx", SelfSigned)], patterns: &["mx.{}"],
        expect: Deferred("4.7.5"), sts: "failed", sts_also: None,
        failure: Some(("certificate-not-trusted", 0)) },
    Cell { name: "enf-strip", mode: "enforce", hosts: &[(10, "mx", Strip)], patterns: &["mx.{}"],
        expect: Deferred("4.7.4"), sts: "failed", sts_also: None,
        failure: Some(("starttls-not-supported", 0)) },
    Cell { name: "tst-wrongname", mode: "testing", hosts: &[(10, "mx", WrongName)], patterns: &["mx.{}"],
        expect: Delivered(0, true), sts: "testing-failed", sts_also: None,
        failure: Some(("certificate-host-mismatch", 0)) },
    Cell { name: "tst-selfsigned", mode: "testing", hosts: &[(10, "mx", SelfSigned)], patterns: &["mx.{}"],
        expect: Delivered(0, true), sts: "testing-failed", sts_also: None,
        failure: Some(("certificate-not-trusted", 0)) },
    Cell { name: "tst-strip", mode: "testing", hosts: &[(10, "mx", Strip)], patterns: &["mx.{}"],
        expect: Delivered(0, false), sts: "testing-failed", sts_also: None,
        failure: Some(("starttls-not-supported", 0)) },
    Cell { name: "plain", mode: "", hosts: &[(10, "mx", Plain)], patterns: &[],
        expect: Delivered(0, false), sts: "none", sts_also: None, failure: None },
];

impl Cell {
    fn domain(&self) -> String {
        format!("{}.test", self.name)
    }

    fn host(&self, i: usize) -> String {
        format!("{}.{}", self.hosts[i].1, self.domain())
    }
}

/// The addresses the namespace needs: receivers and proxies' Postfixes.
pub fn addresses() -> Vec<String> {
    let n: usize = CELLS.iter().map(|c| c.hosts.len()).sum();
    super::lab_addresses(n)
}

pub fn run() {
    let certs = Certs::new();
    let port = lab_port();
    let mut next = 0;
    let mut hosts: Vec<Vec<Mx>> = Vec::new();
    for cell in &CELLS {
        let started = (0..cell.hosts.len())
            .map(|i| {
                let (ip, back) = super::lab_address(next);
                next += 1;
                let host = cell.host(i);
                Mx::start(
                    &certs,
                    &cell.domain(),
                    &host,
                    cell.hosts[i].2,
                    (&ip, &back),
                    port,
                )
            })
            .collect();
        hosts.push(started);
    }
    let names: Vec<String> = CELLS
        .iter()
        .map(|c| format!("mta-sts.{}", c.domain()))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (chain, key) = certs.policy_chain(&names);
    let server = PolicyServer::start(&chain, &key, None);
    let mut records = String::new();
    for (cell, mx) in CELLS.iter().zip(&hosts) {
        let with: Vec<(u16, &Mx)> = cell.hosts.iter().map(|h| h.0).zip(mx).collect();
        let id = (!cell.mode.is_empty()).then_some("20261207a");
        records.push_str(&zone(&cell.domain(), &with, id));
        let patterns: Vec<String> = cell
            .patterns
            .iter()
            .map(|p| p.replace("{}", &cell.domain()))
            .collect();
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let text = policy(cell.mode, &patterns, 86400);
        server.answer(
            &format!("mta-sts.{}", cell.domain()),
            &Answer::policy(&text),
        );
    }
    let dns = DnsServer::start(&records);
    super::check_lab(
        &hosts.iter().flatten().collect::<Vec<_>>(),
        port,
        &server,
        &certs,
    );
    let before: Vec<Vec<usize>> = hosts
        .iter()
        .map(|mx| mx.iter().map(Mx::settled_connections).collect())
        .collect();

    let relay = start_relay(&certs, port, dns.addr, server.port);
    let mails: Vec<Mail> = CELLS
        .iter()
        .map(|c| Mail::new(c.name, &c.domain()))
        .collect();
    let ids = check::send(&relay, &mails);
    let first = check::settle(&relay, &ids, 1);
    let deferred: Vec<String> = first
        .iter()
        .filter(|(_, gone)| !**gone)
        .map(|(id, _)| id.clone())
        .collect();
    // Once more, after the failures: still no plaintext, still waiting.
    let (ok, out, err) = check::tlsrelay(&relay, &["queue", "retry", "--all"]);
    assert!(ok, "queue retry --all: {out}{err}");
    let second = check::settle(&relay, &deferred, 2);

    let mut failures = Vec::new();
    let mut expected_methods = Vec::new();
    for (i, cell) in CELLS.iter().enumerate() {
        let gone = second.get(&ids[i]).copied().unwrap_or(first[&ids[i]]);
        let made: Vec<usize> = hosts[i]
            .iter()
            .zip(&before[i])
            .map(|(mx, b)| mx.settled_connections() - b)
            .collect();
        let (wrong, method) = check_cell(cell, &relay, &ids[i], gone, &hosts[i], &made, &mails[i]);
        expected_methods.push(method);
        check::note(&mut failures, cell.name, &ids[i], &wrong);
    }
    failures.extend(check_report(&relay, &expected_methods));
    for cell in CELLS.iter().filter(|c| !c.mode.is_empty()) {
        let host = format!("mta-sts.{}", cell.domain());
        if server.requests(&host) != 1 {
            failures.push(format!(
                "{host} fetched {} times, not once",
                server.requests(&host)
            ));
        }
    }
    if server.requests("mta-sts.plain.test") != 0 {
        failures.push("mta-sts.plain.test fetched without a TXT record".into());
    }
    check::assert_all_right(&failures, &relay, "enforce and testing");
}

/// One cell: what its hosts saw, the queue, the log, TLS-RPT; and the
/// transit method its delivered message should be counted under.
fn check_cell(
    cell: &Cell,
    relay: &Relay,
    id: &str,
    gone: bool,
    hosts: &[Mx],
    made: &[usize],
    mail: &Mail,
) -> (Vec<String>, Option<&'static str>) {
    let mut wrong = Vec::new();
    let secret = mail.secret();
    let mut method = None;
    for (i, mx) in hosts.iter().enumerate() {
        let stored = mx.stored(&secret, matches!(cell.expect, Delivered(at, _) if at == i));
        let want = match cell.expect {
            Delivered(at, tls) if at == i => vec![tls],
            _ => Vec::new(),
        };
        if stored != want {
            wrong.push(format!(
                "{} stored {stored:?} (TLS?), not {want:?}",
                mx.host
            ));
        }
        if let [true] = stored.as_slice() {
            method = Some(match (cell.mode, tls13(mx, &secret)) {
                ("enforce", _) => "mta-sts",
                (_, true) => "tls13-unverified",
                (_, false) => "tls12-unverified",
            });
        } else if let [false] = stored.as_slice() {
            method = Some("plaintext");
        }
        let plain = mx.plaintext();
        let tls_only = cell.mode == "enforce" || mx.rx != Plain && mx.rx != Strip;
        if tls_only
            && ["MAIL FROM", "RCPT TO", &secret]
                .iter()
                .any(|t| plain.contains(t))
        {
            wrong.push(format!(
                "{} got mail commands in plaintext:\n{plain}",
                mx.host
            ));
        }
    }
    match cell.expect {
        Delivered(..) if !gone => wrong.push("still queued".into()),
        Deferred(code) => {
            if gone {
                wrong.push("left the queue".into());
            }
            wrong.extend(check::check_deferred(relay, mail, Some(code)));
            if made.iter().sum::<usize>() < 2 {
                wrong.push(format!(
                    "{made:?} connections: each attempt must try the host"
                ));
            }
        }
        Delivered(..) => {}
    }
    if cell.name == "enf-mismatch" && made[0] != 0 {
        wrong.push(format!(
            "{} (not in the policy) was connected to",
            cell.host(0)
        ));
    }
    let words = check::sts_words(relay, id);
    if words.last().map(String::as_str) != Some(cell.sts)
        || cell.sts_also.is_some_and(|w| !words.iter().any(|x| x == w))
    {
        wrong.push(format!(
            "sts words {words:?}, want {:?} and last {}",
            cell.sts_also, cell.sts
        ));
    }
    if !cell.mode.is_empty() {
        let kind = "sts";
        let sessions: usize = made.iter().sum();
        let (ok, failed, at) = match cell.failure {
            // The ruled-out host counts as one failed session.
            Some((_, 0)) if cell.name == "enf-mismatch" => (sessions, 1, Some(("*", 0))),
            Some((result, at)) => (0, sessions, Some((result, at))),
            None => (sessions, 0, None),
        };
        let host = at.map(|(_, i)| cell.host(i));
        let failed_at = at.zip(host.as_deref()).map(|((r, _), h)| (r, h));
        wrong.extend(check::check_tls_rpt(
            relay,
            &mail.domain,
            kind,
            (ok, failed),
            failed_at,
        ));
    }
    (wrong, method)
}

/// Whether Postfix's Received header says TLS 1.3 for the message.
fn tls13(mx: &Mx, secret: &str) -> bool {
    mx.delivered()
        .iter()
        .find(|(m, _)| m.contains(secret))
        .is_some_and(|(m, _)| m.contains("(using TLSv1.3"))
}

/// `report --json` against what the receivers stored: per domain the
/// messages by method, plaintext, and the list of plaintext domains.
fn check_report(relay: &Relay, methods: &[Option<&'static str>]) -> Vec<String> {
    let report = match check::report(relay) {
        Ok(report) => report,
        Err(why) => return vec![why],
    };
    let mut wrong = Vec::new();
    let domains = report["domains"].as_array().cloned().unwrap_or_default();
    let mut plaintext = BTreeSet::new();
    for (cell, method) in CELLS.iter().zip(methods) {
        let domain = cell.domain();
        let Some(entry) = domains.iter().find(|d| d["domain"] == domain.as_str()) else {
            wrong.push(format!("report: no entry for {domain}"));
            continue;
        };
        let by_method = &entry["messages_by_method"];
        let total: u64 = by_method
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        let counted = method.map(|m| by_method[m].as_u64());
        let want = u64::from(method.is_some());
        if entry["messages"].as_u64() != Some(want)
            || total != want
            || counted.is_some_and(|c| c != Some(1))
        {
            wrong.push(format!(
                "report {domain}: want {want} message as {method:?}:\n{entry:#}"
            ));
        }
        if *method == Some("plaintext") {
            plaintext.insert(domain.clone());
        }
        if entry["plaintext"].as_bool() != Some(*method == Some("plaintext")) {
            wrong.push(format!("report {domain}: plaintext flag wrong:\n{entry:#}"));
        }
        if matches!(cell.expect, Deferred(_))
            && entry["policy_deferrals"].as_u64().unwrap_or(0) == 0
        {
            wrong.push(format!("report {domain}: no policy deferral:\n{entry:#}"));
        }
    }
    // Every domain of this relay is a cell: the totals are the cells'.
    for word in [
        "mta-sts",
        "tls13-unverified",
        "tls12-unverified",
        "plaintext",
        "dane",
    ] {
        let want = methods.iter().filter(|m| **m == Some(word)).count() as u64;
        let total = report["totals"]["messages"][word].as_u64();
        if total != Some(want) {
            wrong.push(format!(
                "report totals.messages.{word} {total:?}, not {want}"
            ));
        }
    }
    let listed: BTreeSet<String> = report["plaintext_domains"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    if listed != plaintext {
        wrong.push(format!(
            "report plaintext_domains {listed:?}, receivers saw {plaintext:?}"
        ));
    }
    wrong
}
