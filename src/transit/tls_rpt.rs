//! RFC 8460 aggregate reports from a day's counts: a pure function
//! (counts + who we are → the report's JSON value), shown by `tlsrelay
//! tls-rpt show` and sent by the TLS-RPT sender after the day ends.
//!
//! One report per policy domain and UTC day (RFC 8460 §4.1, 00:00:00Z to
//! 23:59:59Z); one `policies[]` entry per policy the day's sessions were
//! judged by; `failure-details` keyed by result type, sending IP, MX
//! host and receiving IP (§4.4). An address that was not known (a host
//! ruled out before a connection) is left out of its detail.

use serde_json::{json, Map, Value};
use time::Date;

use super::aggregate::{DayCounts, DomainCounts, PolicyCounts};
use super::journal::day_name;
use crate::config::Config;

/// Who sends the reports (`[tls_rpt]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitter {
    pub organization_name: String,
    pub contact_info: String,
    /// `[tls_rpt] submitter`, else `[server] hostname`.
    pub submitter: String,
}

impl Submitter {
    pub fn of(config: &Config) -> Submitter {
        let rpt = &config.tls_rpt;
        Submitter {
            organization_name: rpt.organization_name.clone(),
            contact_info: rpt.contact_info.clone(),
            submitter: match rpt.submitter.trim() {
                "" => config.server.hostname.to_string(),
                name => name.to_string(),
            },
        }
    }
}

/// The report id: the same for the same day, domain and submitter, so a
/// report sent again is recognised as the same (RFC 8460 §4.4 `report-id`).
pub fn report_id(day: Date, domain: &str, submitter: &str) -> String {
    format!("{}T00:00:00Z_{domain}@{submitter}", day_name(day))
}

/// The reports of `day`, one per policy domain (`only` one when given),
/// in domain order. The `(other)` bucket has no domain to report to, and
/// a domain without a session (its flagged mail only returned) nothing
/// to report.
pub fn reports(day: Date, counts: &DayCounts, who: &Submitter, only: Option<&str>) -> Vec<Value> {
    counts
        .reported_domains()
        .filter(|(domain, _)| only.is_none_or(|only| only == domain.as_str()))
        .map(|(domain, counts)| report(day, domain, counts, who))
        .collect()
}

/// The report of one domain for one day.
pub fn report(day: Date, domain: &str, counts: &DomainCounts, who: &Submitter) -> Value {
    let name = day_name(day);
    json!({
        "organization-name": who.organization_name,
        "date-range": {
            "start-datetime": format!("{name}T00:00:00Z"),
            "end-datetime": format!("{name}T23:59:59Z"),
        },
        "contact-info": who.contact_info,
        "report-id": report_id(day, domain, &who.submitter),
        "policies": counts.policies.iter().map(|p| policy(domain, p)).collect::<Vec<_>>(),
    })
}

fn policy(domain: &str, counts: &PolicyCounts) -> Value {
    let kind = match counts.policy.kind {
        super::PolicyType::Sts => "sts",
        super::PolicyType::Tlsa => "tlsa",
        super::PolicyType::NoPolicyFound => "no-policy-found",
    };
    let details: Vec<Value> = counts
        .failures
        .iter()
        .map(|f| {
            let mut detail = Map::new();
            detail.insert("result-type".into(), f.result_type.word().into());
            if let Some(ip) = f.sending_ip {
                detail.insert("sending-mta-ip".into(), ip.to_string().into());
            }
            detail.insert("receiving-mx-hostname".into(), f.mx_host.clone().into());
            if let Some(ip) = f.receiving_ip {
                detail.insert("receiving-ip".into(), ip.to_string().into());
            }
            detail.insert("failed-session-count".into(), f.sessions.into());
            detail.insert("failure-reason-code".into(), f.detail.clone().into());
            Value::Object(detail)
        })
        .collect();
    json!({
        "policy": {
            "policy-type": kind,
            "policy-string": counts.policy.strings,
            "policy-domain": domain,
            "mx-host": counts.policy.mx_host,
        },
        "summary": {
            "total-successful-session-count": counts.successful_sessions,
            "total-failure-session-count": counts.failed_sessions,
        },
        "failure-details": details,
    })
}
