//! `tlsrelay report` and `tlsrelay tls-rpt show` over a spool whose
//! transit store holds known events: the JSON contract, the text form,
//! `--domain`, `--days`, an empty store, the relay stopped (no lock) and
//! the relay running (the store open and appending).

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tlsrelay::transit::{Event, Failure, Method, Policy, PolicyType, ResultType, Sink, Store};

const DAY: Duration = Duration::from_secs(86_400);

fn event(domain: &str, method: Method, ago: Duration) -> Event {
    Event {
        at: SystemTime::now() - ago,
        domain: domain.into(),
        policy: Policy::none(),
        mx_host: format!("mx.{domain}"),
        receiving_ip: "127.0.0.2".parse::<IpAddr>().ok(),
        sending_ip: "127.0.0.1".parse::<IpAddr>().ok(),
        method,
        tls_version: match method {
            Method::Tls12Unverified => Some("1.2".into()),
            Method::Plaintext | Method::PlaintextAfterFailure | Method::Deferred => None,
            _ => Some("1.3".into()),
        },
        failure: None,
        sessions: 1,
        messages: u32::from(method != Method::Deferred),
        policy_deferred: method == Method::Deferred,
        requiretls_delivered: 0,
        requiretls_returned: 0,
    }
}

/// A spool with: secure.test 3 messages by MTA-STS today; plain.test 2 in
/// plaintext today (one session, a kept connection); sts.test 1 deferred
/// for a certificate-host-mismatch today; old.test 1 TLS 1.2 three days ago.
fn fill(store: &Store) {
    let sts = Policy {
        kind: PolicyType::Sts,
        strings: vec![
            "version: STSv1".into(),
            "mode: enforce".into(),
            "mx: mx.sts.test".into(),
            "max_age: 86400".into(),
        ],
        mx_host: vec!["mx.sts.test".into()],
    };
    for _ in 0..3 {
        let mut e = event("secure.test", Method::MtaSts, Duration::ZERO);
        e.policy = sts.clone();
        store.record(e);
    }
    store.record(event("plain.test", Method::Plaintext, Duration::ZERO));
    let mut kept = event("plain.test", Method::Plaintext, Duration::ZERO);
    kept.sessions = 0;
    store.record(kept);
    let mut deferred = event("sts.test", Method::Deferred, Duration::ZERO);
    deferred.policy = sts;
    deferred.failure = Some(Failure {
        result_type: ResultType::CertificateHostMismatch,
        detail: "certificate does not name mx.sts.test".into(),
    });
    store.record(deferred);
    store.record(event("old.test", Method::Tls12Unverified, 3 * DAY));
}

fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("tlsrelay.toml");
    let text = format!(
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"{}\"\n[tls_rpt]\nenabled = true\norganization_name = \"Example Org\"\ncontact_info = \"mailto:tlsrpt@example.test\"\n",
        dir.join("spool").display()
    );
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn run(config: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json(config: &Path, args: &[&str]) -> Value {
    let text = run(config, args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn open(dir: &Path) -> Store {
    Store::open(&dir.join("spool"), 30 * DAY).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn json_report_follows_the_contract_while_the_relay_runs_and_after() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config(dir.path());
    let store = open(dir.path());
    fill(&store);
    // The store is open and holds its journal: the report reads anyway.
    let running = json(&config, &["report", "--json"]);
    drop(store);
    let stopped = json(&config, &["report", "--json"]);
    assert_eq!(running, stopped);
    let report = stopped;
    for method in Method::ALL {
        assert!(
            report["totals"]["messages"][method.word()].is_u64(),
            "{method:?}"
        );
        assert!(
            report["totals"]["sessions"][method.word()].is_u64(),
            "{method:?}"
        );
    }
    assert_eq!(report["totals"]["messages"]["mta-sts"], 3);
    assert_eq!(report["totals"]["messages"]["plaintext"], 2);
    assert_eq!(report["totals"]["sessions"]["plaintext"], 1);
    assert_eq!(report["totals"]["sessions"]["deferred"], 1);
    assert_eq!(report["totals"]["messages"]["tls12-unverified"], 1);
    let names: Vec<&str> = report["domains"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["domain"].as_str())
        .collect();
    // Worst first: plaintext 2, then a deferral with a failure (2), by name.
    assert_eq!(names, ["plain.test", "sts.test", "old.test", "secure.test"]);
    let sts = &report["domains"][1];
    assert_eq!(sts["policy_deferrals"], 1);
    assert_eq!(
        sts["failures"][0]["result_type"],
        "certificate-host-mismatch"
    );
    assert_eq!(sts["failures"][0]["count"], 1);
    assert_eq!(sts["plaintext"], false);
    assert_eq!(report["domains"][0]["plaintext"], true);
    assert_eq!(report["domains"][3]["tls_versions"]["1.3"], 3);
    assert_eq!(report["domains"][3]["messages"], 3);
    assert_eq!(
        report["plaintext_domains"],
        serde_json::json!(["plain.test"])
    );
    assert_eq!(report["days"].as_array().map(Vec::len), Some(7));
    assert_eq!(report["days"][6]["messages_by_method"]["mta-sts"], 3);
    assert_eq!(
        report["days"][3]["messages_by_method"]["tls12-unverified"],
        1
    );
}

#[test]
fn domain_and_days_narrow_the_report() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config(dir.path());
    fill(&open(dir.path()));
    let one = json(&config, &["report", "--json", "--domain", "Secure.Test."]);
    assert_eq!(one["domains"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["domains"][0]["domain"], "secure.test");
    assert_eq!(one["totals"]["messages"]["plaintext"], 0);
    let today = json(&config, &["report", "--json", "--days", "1"]);
    assert_eq!(today["from"], today["to"]);
    assert_eq!(today["totals"]["messages"]["tls12-unverified"], 0);
    assert_eq!(today["days"].as_array().map(Vec::len), Some(1));
    let text = run(&config, &["report", "--days", "2"]);
    assert!(
        text.contains("Domains that received plaintext\n  plain.test\n"),
        "{text}"
    );
    assert!(text.contains("certificate-host-mismatch 1"), "{text}");
    assert!(!text.contains("old.test"), "{text}");
}

#[test]
fn an_empty_store_gives_zeros_not_an_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config(dir.path());
    let report = json(&config, &["report", "--json"]);
    assert_eq!(report["domains"], serde_json::json!([]));
    assert_eq!(report["totals"]["messages"]["dane"], 0);
    assert!(run(&config, &["report"]).contains("(none)"));
    assert_eq!(json(&config, &["tls-rpt", "show"]), serde_json::json!([]));
}

#[test]
fn tls_rpt_show_gives_every_rfc_8460_field() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config(dir.path());
    fill(&open(dir.path()));
    let reports = json(&config, &["tls-rpt", "show", "--domain", "sts.test"]);
    assert_eq!(reports.as_array().map(Vec::len), Some(1));
    let report = &reports[0];
    assert_eq!(report["organization-name"], "Example Org");
    assert_eq!(report["contact-info"], "mailto:tlsrpt@example.test");
    let start = report["date-range"]["start-datetime"]
        .as_str()
        .unwrap_or("");
    assert!(start.ends_with("T00:00:00Z"), "{start}");
    assert!(report["date-range"]["end-datetime"]
        .as_str()
        .unwrap_or("")
        .ends_with("T23:59:59Z"));
    let id = report["report-id"].as_str().unwrap_or("");
    assert!(id.ends_with("_sts.test@relay.example.test"), "{id}");
    let policy = &report["policies"][0];
    assert_eq!(policy["policy"]["policy-type"], "sts");
    assert_eq!(policy["policy"]["policy-domain"], "sts.test");
    assert_eq!(
        policy["policy"]["mx-host"],
        serde_json::json!(["mx.sts.test"])
    );
    assert_eq!(policy["policy"]["policy-string"][1], "mode: enforce");
    assert_eq!(policy["summary"]["total-successful-session-count"], 0);
    assert_eq!(policy["summary"]["total-failure-session-count"], 1);
    let detail = &policy["failure-details"][0];
    assert_eq!(detail["result-type"], "certificate-host-mismatch");
    assert_eq!(detail["sending-mta-ip"], "127.0.0.1");
    assert_eq!(detail["receiving-ip"], "127.0.0.2");
    assert_eq!(detail["receiving-mx-hostname"], "mx.sts.test");
    assert_eq!(detail["failed-session-count"], 1);
    assert_eq!(
        detail["failure-reason-code"],
        "certificate does not name mx.sts.test"
    );
    // Every domain of the day, and the same id when asked again.
    let all = json(&config, &["tls-rpt", "show"]);
    assert_eq!(all.as_array().map(Vec::len), Some(3));
    let again = json(&config, &["tls-rpt", "show", "--domain", "sts.test"]);
    assert_eq!(again[0]["report-id"], report["report-id"]);
}

#[test]
fn requiretls_messages_delivered_and_returned_in_every_form() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config(dir.path());
    let store = open(dir.path());
    // secure.test: 3 by DANE, 2 of them flagged, and 1 flagged returned;
    // strict.test: 2 flagged returned and nothing else.
    for flagged in [1, 1, 0] {
        let mut e = event("secure.test", Method::Dane, Duration::ZERO);
        e.requiretls_delivered = flagged;
        store.record(e);
    }
    store.record(Event::returned_for_requiretls(
        SystemTime::now(),
        "secure.test",
    ));
    for _ in 0..2 {
        store.record(Event::returned_for_requiretls(
            SystemTime::now(),
            "strict.test",
        ));
    }
    drop(store);

    let report = json(&config, &["report", "--json"]);
    assert_eq!(report["totals"]["requiretls_delivered"], 2);
    assert_eq!(report["totals"]["requiretls_returned"], 3);
    // In no method column, no session.
    assert_eq!(report["totals"]["messages"]["dane"], 3);
    assert_eq!(report["totals"]["messages"]["deferred"], 0);
    assert_eq!(report["totals"]["sessions"]["deferred"], 0);
    assert_eq!(report["totals"]["sessions"]["dane"], 3);
    // Worst first: returned mail counts against a domain.
    let strict = &report["domains"][0];
    assert_eq!(strict["domain"], "strict.test", "{report}");
    assert_eq!(strict["requiretls_returned"], 2);
    assert_eq!(strict["requiretls_delivered"], 0);
    assert_eq!(strict["messages"], 0);
    assert_eq!(strict["sessions"], 0);
    assert_eq!(strict["policy_deferrals"], 0);
    assert_eq!(strict["failures"], serde_json::json!([]));
    let secure = &report["domains"][1];
    assert_eq!(secure["requiretls_delivered"], 2);
    assert_eq!(secure["requiretls_returned"], 1);
    assert_eq!(secure["messages"], 3);

    let text = run(&config, &["report"]);
    assert!(text.contains("REQUIRETLS (RFC 8689)"), "{text}");
    for (name, delivered, returned) in [
        ("all domains", 2, 3),
        ("strict.test", 0, 2),
        ("secure.test", 2, 1),
    ] {
        assert!(
            text.contains(&format!("  {name:<28} {delivered:>10} {returned:>10}\n")),
            "{name}: {text}"
        );
    }

    let page = dir.path().join("report.html");
    run(&config, &["report", "--html", &page.to_string_lossy()]);
    let html = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{e}"));
    for cell in [
        "data-domain=\"strict.test\" data-field=\"requiretls_returned\">2<",
        "data-domain=\"secure.test\" data-field=\"requiretls_delivered\">2<",
        "data-field=\"totals.requiretls_delivered\">2<",
        "data-field=\"totals.requiretls_returned\">3<",
    ] {
        assert!(html.contains(cell), "{cell}: {html}");
    }

    // TLS-RPT: secure.test's sessions alone; strict.test had none.
    let reports = json(&config, &["tls-rpt", "show"]);
    assert_eq!(reports.as_array().map(Vec::len), Some(1), "{reports}");
    let policies = &reports[0]["policies"];
    assert_eq!(policies.as_array().map(Vec::len), Some(1), "{reports}");
    assert_eq!(policies[0]["summary"]["total-successful-session-count"], 3);
    assert_eq!(policies[0]["summary"]["total-failure-session-count"], 0);
}
