//! `tlsrelay report --html` rendered by a real browser: headless Chromium
//! (Debian's `chromium`) loads the page from a spool filled with known
//! transit events, takes a screenshot (a PNG that is not blank), and its
//! DOM's figure cells (`data-domain`/`data-day` + `data-field`, or a
//! `totals.` field) equal the figures of `tlsrelay report --json` for the
//! same spool.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tlsrelay::transit::{Event, Failure, Method, Policy, ResultType, Sink, Store};

use crate::support::postfix::run_bounded;

const BROWSER: Duration = Duration::from_secs(120);

fn fill(spool: &Path) {
    let store =
        Store::open(spool, Duration::from_secs(30 * 86_400)).unwrap_or_else(|e| panic!("{e}"));
    let mut n = 0u64;
    for (domain, method, count, days_ago) in [
        ("dane.test", Method::Dane, 5, 0),
        ("sts.test", Method::MtaSts, 4, 1),
        ("partner.test", Method::Connector, 3, 2),
        ("modern.test", Method::Tls13Unverified, 7, 0),
        ("older.test", Method::Tls12Unverified, 2, 3),
        ("plain.test", Method::Plaintext, 3, 4),
        ("broken.test", Method::PlaintextAfterFailure, 2, 5),
        ("strict.test", Method::Deferred, 2, 6),
    ] {
        for _ in 0..count {
            n += 1;
            store.record(Event {
                at: SystemTime::now() - Duration::from_secs(days_ago * 86_400),
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
                failure: (method == Method::Deferred || method == Method::PlaintextAfterFailure)
                    .then(|| Failure {
                        result_type: ResultType::ValidationFailure,
                        detail: format!("handshake {n} failed"),
                    }),
                sessions: 1,
                messages: u32::from(method != Method::Deferred),
                policy_deferred: method == Method::Deferred,
                requiretls_delivered: u32::from(method == Method::Dane),
                requiretls_returned: 0,
            });
        }
    }
    // Flagged messages returned (5.7.30): no session, no message.
    for _ in 0..3 {
        store.record(Event::returned_for_requiretls(
            SystemTime::now(),
            "strict.test",
        ));
    }
    store.flush().unwrap_or_else(|e| panic!("{e}"));
}

fn tlsrelay(config: &Path, args: &[&str]) -> String {
    let output = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
            .args(args)
            .arg("-c")
            .arg(config),
        BROWSER,
    );
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn chromium(args: &[&str]) -> Vec<u8> {
    let output = run_bounded(
        Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu"])
            .args(args),
        BROWSER,
    );
    assert!(
        output.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The value of attribute `name` in the tag text `tag`.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Every figure cell in the DOM: (owner kind, owner, field, number); a
/// total's owner kind is `totals`, its owner empty.
fn figures(dom: &str) -> Vec<(&'static str, String, String, u64)> {
    let mut found = Vec::new();
    for piece in dom.split('<').skip(1) {
        let Some((tag, text)) = piece.split_once('>') else {
            continue;
        };
        let Some(field) = attribute(tag, "data-field") else {
            continue;
        };
        let owner = match (attribute(tag, "data-domain"), attribute(tag, "data-day")) {
            (Some(domain), _) => ("domain", domain),
            (None, Some(day)) => ("day", day),
            _ if field.starts_with("totals.") => ("totals", ""),
            _ => continue,
        };
        let number = text
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("cell {tag}: {text}"));
        found.push((owner.0, owner.1.to_string(), field.to_string(), number));
    }
    found
}

/// The `--json` figure for one cell.
fn expected(report: &Value, kind: &str, owner: &str, field: &str) -> u64 {
    let (list, key) = match kind {
        "domain" => ("domains", "domain"),
        "totals" => ("", ""),
        _ => ("days", "day"),
    };
    // A total's field is its path from the top of the object.
    let row = match list {
        "" => report,
        list => report[list]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r[key] == owner))
            .unwrap_or_else(|| panic!("{owner} not in --json")),
    };
    let (head, rest) = field.split_once('.').unwrap_or((field, ""));
    let value = match (head, rest) {
        ("failures", kind) => row["failures"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["result_type"] == kind))
            .map(|f| f["count"].clone())
            .unwrap_or(Value::Null),
        (head, "") => row[head].clone(),
        (head, rest) => row[head][rest].clone(),
    };
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{owner} {field}: {value}"))
}

/// Decodes the PNG's pixel rows (Python's zlib, not ours) and counts the
/// distinct byte values: a blank page has one or two.
fn distinct_pixel_bytes(png: &Path) -> usize {
    let script = "import sys,zlib,struct\n\
        d=open(sys.argv[1],'rb').read()\n\
        assert d[:8]==b'\\x89PNG\\r\\n\\x1a\\n'\n\
        i=8;idat=b''\n\
        while i<len(d):\n\
        \x20   n,t=struct.unpack('>I4s',d[i:i+8]);\n\
        \x20   idat+=d[i+8:i+8+n] if t==b'IDAT' else b''\n\
        \x20   i+=12+n\n\
        print(len(set(zlib.decompress(idat))))\n";
    let output = run_bounded(
        Command::new("python3").arg("-c").arg(script).arg(png),
        BROWSER,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
#[ignore = "real peer: run by .ci/run"]
fn html_report_renders_in_chromium_with_the_json_figures() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let spool = dir.path().join("spool");
    fill(&spool);
    let config = dir.path().join("tlsrelay.toml");
    std::fs::write(
        &config,
        format!("[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"{}\"\n", spool.display()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let page = dir.path().join("report.html");
    let page_arg = page.to_string_lossy().into_owned();
    tlsrelay(&config, &["report", "--html", &page_arg]);
    let report: Value = serde_json::from_str(&tlsrelay(&config, &["report", "--json"]))
        .unwrap_or_else(|e| panic!("{e}"));
    let html = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !html.contains("<script") && !html.contains("http://") && !html.contains("https://"),
        "self-contained"
    );
    assert!(html.contains("<svg") && html.contains("<style>"));

    let shot = dir.path().join("report.png");
    let url = format!("file://{}", page.display());
    chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,1600",
        &url,
    ]);
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot: {e}"));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(distinct_pixel_bytes(&shot) > 16, "the screenshot is blank");

    let dom = String::from_utf8_lossy(&chromium(&["--dump-dom", &url])).into_owned();
    let cells = figures(&dom);
    let domains = report["domains"].as_array().map_or(0, Vec::len);
    assert_eq!(domains, 8, "{report}");
    // Per domain: messages, sessions, 8 methods, 2 TLS versions, deferrals,
    // REQUIRETLS delivered and returned (+ failures).
    assert!(
        cells.iter().filter(|c| c.0 == "domain").count() >= domains * 15,
        "{cells:?}"
    );
    assert_eq!(cells.iter().filter(|c| c.0 == "totals").count(), 2);
    assert_eq!(report["totals"]["requiretls_delivered"], 5);
    assert_eq!(report["totals"]["requiretls_returned"], 3);
    assert_eq!(
        cells.iter().filter(|c| c.0 == "day").count(),
        7 * Method::ALL.len()
    );
    for (kind, owner, field, number) in &cells {
        assert_eq!(
            *number,
            expected(&report, kind, owner, field),
            "{kind} {owner} {field}"
        );
    }
    // Worst first in the page as in the JSON.
    let first = cells.iter().find(|c| c.0 == "domain").map(|c| c.1.clone());
    assert_eq!(first.as_deref(), report["domains"][0]["domain"].as_str());
}
