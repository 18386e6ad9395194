//! `tlsrelay report --html FILE`: the [`Report`] as one self-contained
//! page (inline CSS and SVG, no script, no external URL): per day a
//! stacked bar of messages by method with its legend, then the per-domain
//! table worst first, then the messages flagged REQUIRETLS in all. Every
//! figure cell carries `data-domain` (or `data-day`) and `data-field` (a
//! path in the `--json` object, e.g. `messages_by_method.tls13-unverified`)
//! so a test can compare the page with the JSON; a total's `data-field`
//! starts with `totals.` and it has no owner.

use std::fmt::Write;

use super::report::{ByMethod, Report};
use super::Method;

/// One colour per method, strongest (green) to none (grey).
const COLOURS: [&str; Method::ALL.len()] = [
    "#1b7837", "#5aae61", "#a6dba0", "#4393c3", "#92c5de", "#d6604d", "#b2182b", "#878787",
];

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}\
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}\
th:first-child,td:first-child{text-align:left}\
tr.plaintext td:first-child{color:#b2182b;font-weight:bold}\
.legend span{display:inline-block;margin-right:1em}\
.swatch{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:middle}";

const BAR_HEIGHT: f64 = 200.0;
const BAR_WIDTH: f64 = 36.0;
const BAR_GAP: f64 = 14.0;

/// HTML-escapes text for element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let title = format!(
        "tlsrelay transit-security report {} to {}",
        report.from, report.to
    );
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    out.push_str("<h2>Messages per day, by how they travelled</h2>\n");
    legend(&mut out);
    chart(&mut out, report);
    days_table(&mut out, report);
    out.push_str("<h2>Per destination domain, worst first</h2>\n");
    domains_table(&mut out, report);
    requiretls(&mut out, report);
    out.push_str("<h2>Domains that received plaintext</h2>\n<ul>\n");
    if report.plaintext_domains.is_empty() {
        out.push_str("<li>(none)</li>\n");
    }
    for domain in &report.plaintext_domains {
        let _ = writeln!(
            out,
            "<li data-field=\"plaintext_domains\">{}</li>",
            escape(domain)
        );
    }
    out.push_str("</ul>\n</body></html>\n");
    out
}

fn legend(out: &mut String) {
    out.push_str("<p class=\"legend\">");
    for (method, colour) in Method::ALL.iter().zip(COLOURS) {
        let _ = write!(
            out,
            "<span><span class=\"swatch\" style=\"background:{colour}\"></span>{}</span>",
            method.word()
        );
    }
    out.push_str("</p>\n");
}

fn chart(out: &mut String, report: &Report) {
    let most = report
        .days
        .iter()
        .map(|d| d.messages_by_method.total())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let width = report.days.len() as f64 * (BAR_WIDTH + BAR_GAP) + BAR_GAP;
    let height = BAR_HEIGHT + 40.0;
    let _ = writeln!(
        out,
        "<svg width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"messages per day by method\">"
    );
    let _ = writeln!(
        out,
        "<line x1=\"0\" y1=\"{BAR_HEIGHT}\" x2=\"{width}\" y2=\"{BAR_HEIGHT}\" stroke=\"#444\"/>"
    );
    for (i, day) in report.days.iter().enumerate() {
        let x = BAR_GAP + i as f64 * (BAR_WIDTH + BAR_GAP);
        let mut top = BAR_HEIGHT;
        for (method, colour) in Method::ALL.iter().zip(COLOURS) {
            let n = day.messages_by_method.get(*method);
            if n == 0 {
                continue;
            }
            let h = n as f64 / most * BAR_HEIGHT;
            top -= h;
            let _ = writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{BAR_WIDTH}\" height=\"{h:.1}\" fill=\"{colour}\" data-day=\"{}\" data-method=\"{}\" data-value=\"{n}\"><title>{} {}: {n}</title></rect>",
                day.day,
                method.word(),
                day.day,
                method.word()
            );
        }
        let label = day.day.get(5..).unwrap_or(&day.day);
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{label}</text>",
            x + BAR_WIDTH / 2.0,
            BAR_HEIGHT + 16.0
        );
    }
    out.push_str("</svg>\n");
}

fn head(out: &mut String, first: &str, extra_before: &[&str], extra_after: &[&str]) {
    let _ = write!(out, "<tr><th>{first}</th>");
    for name in extra_before {
        let _ = write!(out, "<th>{name}</th>");
    }
    for method in Method::ALL {
        let _ = write!(out, "<th>{}</th>", method.word());
    }
    for name in extra_after {
        let _ = write!(out, "<th>{name}</th>");
    }
    out.push_str("</tr>\n");
}

/// One `<td>` per method, each with its `data-field`.
fn method_cells(out: &mut String, key: &str, owner: &str, field: &str, counts: &ByMethod) {
    for method in Method::ALL {
        let _ = write!(
            out,
            "<td {key}=\"{owner}\" data-field=\"{field}.{}\">{}</td>",
            method.word(),
            counts.get(method)
        );
    }
}

fn days_table(out: &mut String, report: &Report) {
    out.push_str("<table>\n");
    head(out, "day (messages)", &[], &[]);
    for day in &report.days {
        let _ = write!(out, "<tr><td>{}</td>", day.day);
        method_cells(
            out,
            "data-day",
            &day.day,
            "messages_by_method",
            &day.messages_by_method,
        );
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn domains_table(out: &mut String, report: &Report) {
    if report.domains.is_empty() {
        out.push_str("<p>No delivery recorded in these days.</p>\n");
        return;
    }
    out.push_str("<table>\n");
    head(
        out,
        "domain (messages by method)",
        &["messages", "sessions"],
        &[
            "TLS 1.3 sessions",
            "TLS 1.2 sessions",
            "policy deferrals",
            "REQUIRETLS delivered",
            "REQUIRETLS returned",
            "failed sessions",
        ],
    );
    for row in &report.domains {
        let domain = escape(&row.domain);
        let class = if row.plaintext {
            " class=\"plaintext\""
        } else {
            ""
        };
        let cell = |out: &mut String, field: &str, n: u64| {
            let _ = write!(
                out,
                "<td data-domain=\"{domain}\" data-field=\"{field}\">{n}</td>"
            );
        };
        let _ = write!(out, "<tr{class}><td>{domain}</td>");
        cell(out, "messages", row.messages);
        cell(out, "sessions", row.sessions);
        method_cells(
            out,
            "data-domain",
            &domain,
            "messages_by_method",
            &row.messages_by_method,
        );
        let version = |v: &str| row.tls_versions.get(v).copied().unwrap_or(0);
        cell(out, "tls_versions.1.3", version("1.3"));
        cell(out, "tls_versions.1.2", version("1.2"));
        cell(out, "policy_deferrals", row.policy_deferrals);
        cell(out, "requiretls_delivered", row.requiretls_delivered);
        cell(out, "requiretls_returned", row.requiretls_returned);
        out.push_str("<td>");
        for failure in &row.failures {
            let _ = write!(
                out,
                "{} <span data-domain=\"{domain}\" data-field=\"failures.{}\">{}</span><br>",
                failure.result_type, failure.result_type, failure.count
            );
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</table>\n");
}

/// The messages flagged REQUIRETLS (RFC 8689) in all: what each figure
/// means, as the text form says it.
fn requiretls(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "<h2>Messages flagged REQUIRETLS (RFC 8689)</h2>\n<p>Delivered (also counted in the method columns): \
         <span data-field=\"totals.requiretls_delivered\">{}</span>. Returned to their sender with 5.7.30, no next hop having met the requirement (in no method column): \
         <span data-field=\"totals.requiretls_returned\">{}</span>.</p>",
        report.totals.requiretls_delivered, report.totals.requiretls_returned
    );
}
