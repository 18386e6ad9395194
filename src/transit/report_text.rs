//! The text form of `tlsrelay report`: the [`Report`]'s figures as
//! tables for a terminal, the messages flagged REQUIRETLS, then the
//! domains that received plaintext.

use std::fmt::Write;

use super::report::{ByMethod, Report};
use super::Method;

/// Short column heads, in [`Method::ALL`] order.
const HEADS: [&str; Method::ALL.len()] = [
    "dane",
    "mta-sts",
    "connector",
    "tls1.3",
    "tls1.2",
    "plain",
    "plain-fail",
    "deferred",
];

/// How many failure reasons a domain's row names.
const TOP_FAILURES: usize = 3;

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Transit-security report {} to {} (UTC days)",
        report.from, report.to
    );
    let _ = writeln!(
        out,
        "Columns by method: dane = DANE-verified, mta-sts = MTA-STS-enforced, connector = verified by a connector, tls1.3/tls1.2 = TLS unverified, plain = plaintext, plain-fail = plaintext after a failed handshake, deferred = deferred for policy"
    );
    let _ = writeln!(out);
    for (title, by) in [
        ("Messages by method", &report.totals.messages),
        ("Sessions by method", &report.totals.sessions),
    ] {
        let _ = writeln!(out, "{title}");
        let _ = writeln!(out, "{}", header("", &["total"]));
        let total = by.total().to_string();
        let _ = writeln!(out, "{}", line("all domains", by, &[total]));
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "Per day, messages by method");
    let _ = writeln!(out, "{}", header("day", &["total"]));
    for day in &report.days {
        let total = day.messages_by_method.total().to_string();
        let _ = writeln!(out, "{}", line(&day.day, &day.messages_by_method, &[total]));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Per domain, worst first: messages by method");
    if report.domains.is_empty() {
        let _ = writeln!(out, "  (no delivery recorded in these days)");
    } else {
        let _ = writeln!(
            out,
            "{}",
            header(
                "domain",
                &["messages", "sessions", "tls1.3-s", "tls1.2-s", "pol-defer"]
            )
        );
        for row in &report.domains {
            let v = |k: &str| row.tls_versions.get(k).copied().unwrap_or(0).to_string();
            let extra = [
                row.messages.to_string(),
                row.sessions.to_string(),
                v("1.3"),
                v("1.2"),
                row.policy_deferrals.to_string(),
            ];
            let _ = writeln!(
                out,
                "{}",
                line(&row.domain, &row.messages_by_method, &extra)
            );
            if !row.failures.is_empty() {
                let top: Vec<String> = row
                    .failures
                    .iter()
                    .take(TOP_FAILURES)
                    .map(|f| format!("{} {}", f.result_type, f.count))
                    .collect();
                let _ = writeln!(out, "    failed sessions: {}", top.join(", "));
            }
        }
    }
    let _ = writeln!(out);
    requiretls(&mut out, report);
    let _ = writeln!(out);
    let _ = writeln!(out, "Domains that received plaintext");
    if report.plaintext_domains.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for domain in &report.plaintext_domains {
        let _ = writeln!(out, "  {domain}");
    }
    out
}

/// The messages flagged REQUIRETLS (RFC 8689): in all, then for each
/// domain that had any, in the report's order.
fn requiretls(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "REQUIRETLS (RFC 8689): flagged messages delivered (also counted above), and returned to their sender (5.7.30: no hop met the requirement)"
    );
    let _ = writeln!(out, "{}", row("domain", ["delivered", "returned"]));
    let totals = &report.totals;
    let all = [totals.requiretls_delivered, totals.requiretls_returned];
    let _ = writeln!(out, "{}", row("all domains", all));
    for domain in &report.domains {
        let counts = [domain.requiretls_delivered, domain.requiretls_returned];
        if counts != [0, 0] {
            let _ = writeln!(out, "{}", row(&domain.domain, counts));
        }
    }
}

const FIRST: usize = 28;
const WIDTH: usize = 10;

/// A table row: `first`, then each cell right-aligned in its column.
fn row<T: std::fmt::Display>(first: &str, cells: impl IntoIterator<Item = T>) -> String {
    let mut text = format!("  {first:<FIRST$}");
    for cell in cells {
        let _ = write!(text, " {cell:>WIDTH$}");
    }
    text
}

fn header(first: &str, extra: &[&str]) -> String {
    row(first, HEADS.iter().chain(extra)).trim_end().to_string()
}

fn line(first: &str, counts: &ByMethod, extra: &[String]) -> String {
    let counts = counts.0.iter().map(u64::to_string);
    row(first, counts.chain(extra.iter().cloned()))
}
