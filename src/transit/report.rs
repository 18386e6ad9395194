//! `tlsrelay report`: the transit-security report, worked out from the
//! day counts (pure: counts in, [`Report`] out). Its JSON form is the
//! contract of issue 16 (README, "Transit-security report"); the text
//! and HTML forms ([`super::report_text`], [`super::report_html`]) show
//! the same figures.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};
use time::Date;

use super::aggregate::DayCounts;
use super::journal::day_name;
use super::{Method, ResultType};

/// Counts by method, every method present, in [`Method::ALL`] order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByMethod(pub [u64; Method::ALL.len()]);

impl ByMethod {
    pub fn get(&self, method: Method) -> u64 {
        self.0[index(method)]
    }

    fn add(&mut self, method: Method, n: u64) {
        self.0[index(method)] += n;
    }

    fn add_all(&mut self, other: &ByMethod) {
        for (into, n) in self.0.iter_mut().zip(other.0) {
            *into += n;
        }
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Messages or sessions in plaintext, after a failure or not.
    pub fn plaintext(&self) -> u64 {
        self.get(Method::Plaintext) + self.get(Method::PlaintextAfterFailure)
    }
}

fn index(method: Method) -> usize {
    Method::ALL.iter().position(|m| *m == method).unwrap_or(0)
}

impl Serialize for ByMethod {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(Method::ALL.len()))?;
        for method in Method::ALL {
            map.serialize_entry(method.word(), &self.get(method))?;
        }
        map.end()
    }
}

#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub totals: Totals,
    /// Worst first: most plaintext messages + policy deferrals + failed
    /// sessions + flagged messages returned, then by name.
    pub domains: Vec<DomainRow>,
    /// Every day of the range, oldest first.
    pub days: Vec<DayRow>,
    pub plaintext_domains: Vec<String>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Totals {
    pub messages: ByMethod,
    pub sessions: ByMethod,
    /// Messages flagged REQUIRETLS (RFC 8689) delivered, per domain
    /// delivered to: also counted in `messages`.
    pub requiretls_delivered: u64,
    /// Messages flagged REQUIRETLS returned to their sender (5.7.30), per
    /// domain no hop of which met the requirement: in no method column.
    pub requiretls_returned: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct DomainRow {
    pub domain: String,
    pub messages: u64,
    pub sessions: u64,
    pub messages_by_method: ByMethod,
    pub sessions_by_method: ByMethod,
    /// Sessions by TLS version agreed; `1.3` and `1.2` always present.
    pub tls_versions: BTreeMap<String, u64>,
    pub policy_deferrals: u64,
    /// Failed sessions by RFC 8460 result type, most first.
    pub failures: Vec<FailureRow>,
    /// Some message went to it in plaintext.
    pub plaintext: bool,
    /// Of `messages`, those flagged REQUIRETLS (RFC 8689).
    pub requiretls_delivered: u64,
    /// Messages flagged REQUIRETLS returned to their sender (5.7.30): no
    /// hop of this domain met the requirement. Not in `messages`.
    pub requiretls_returned: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct FailureRow {
    pub result_type: &'static str,
    pub count: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct DayRow {
    pub day: String,
    pub messages_by_method: ByMethod,
    pub sessions_by_method: ByMethod,
}

impl DomainRow {
    fn new(domain: &str) -> DomainRow {
        DomainRow {
            domain: domain.to_string(),
            messages: 0,
            sessions: 0,
            messages_by_method: ByMethod::default(),
            sessions_by_method: ByMethod::default(),
            tls_versions: [("1.3".to_string(), 0), ("1.2".to_string(), 0)].into(),
            policy_deferrals: 0,
            failures: Vec::new(),
            plaintext: false,
            requiretls_delivered: 0,
            requiretls_returned: 0,
        }
    }

    /// How bad it looks: what sorts the table.
    pub fn badness(&self) -> u64 {
        self.messages_by_method.plaintext()
            + self.policy_deferrals
            + self.failures.iter().map(|f| f.count).sum::<u64>()
            + self.requiretls_returned
    }
}

/// The report of the days `from..=to` in `days`, for `only` one domain
/// when given.
pub fn build(days: &BTreeMap<Date, DayCounts>, from: Date, to: Date, only: Option<&str>) -> Report {
    let mut totals = Totals::default();
    let mut rows: BTreeMap<String, DomainRow> = BTreeMap::new();
    let mut failures: BTreeMap<String, BTreeMap<ResultType, u64>> = BTreeMap::new();
    let mut day_rows = Vec::new();
    let mut day = from;
    while day <= to {
        let mut row = DayRow {
            day: day_name(day),
            messages_by_method: ByMethod::default(),
            sessions_by_method: ByMethod::default(),
        };
        let counts = days.get(&day).map(|c| &c.domains);
        for (domain, counts) in counts.into_iter().flatten() {
            if only.is_some_and(|only| only != domain) {
                continue;
            }
            let domain_row = rows
                .entry(domain.clone())
                .or_insert_with(|| DomainRow::new(domain));
            domain_row.requiretls_delivered += counts.requiretls_delivered;
            domain_row.requiretls_returned += counts.requiretls_returned;
            totals.requiretls_delivered += counts.requiretls_delivered;
            totals.requiretls_returned += counts.requiretls_returned;
            for policy in &counts.policies {
                for (method, n) in &policy.messages_by_method {
                    domain_row.messages_by_method.add(*method, *n);
                    row.messages_by_method.add(*method, *n);
                }
                for (method, n) in &policy.sessions_by_method {
                    domain_row.sessions_by_method.add(*method, *n);
                    row.sessions_by_method.add(*method, *n);
                }
                for (version, n) in &policy.tls_versions {
                    *domain_row.tls_versions.entry(version.clone()).or_default() += n;
                }
                domain_row.policy_deferrals += policy.policy_deferrals;
                let by_type = failures.entry(domain.clone()).or_default();
                for failure in &policy.failures {
                    *by_type.entry(failure.result_type).or_default() += failure.sessions;
                }
            }
        }
        totals.messages.add_all(&row.messages_by_method);
        totals.sessions.add_all(&row.sessions_by_method);
        day_rows.push(row);
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    let mut domains: Vec<DomainRow> = rows
        .into_values()
        .map(|mut row| {
            row.messages = row.messages_by_method.total();
            row.sessions = row.sessions_by_method.total();
            row.plaintext = row.messages_by_method.plaintext() > 0;
            let mut list: Vec<FailureRow> = failures
                .remove(&row.domain)
                .unwrap_or_default()
                .into_iter()
                .map(|(kind, count)| FailureRow {
                    result_type: kind.word(),
                    count,
                })
                .collect();
            list.sort_by(|a, b| b.count.cmp(&a.count).then(a.result_type.cmp(b.result_type)));
            row.failures = list;
            row
        })
        .collect();
    domains.sort_by(|a, b| {
        b.badness()
            .cmp(&a.badness())
            .then_with(|| a.domain.cmp(&b.domain))
    });
    let plaintext_domains = {
        let mut names: Vec<String> = domains
            .iter()
            .filter(|d| d.plaintext)
            .map(|d| d.domain.clone())
            .collect();
        names.sort();
        names
    };
    Report {
        from: day_name(from),
        to: day_name(to),
        totals,
        domains,
        days: day_rows,
        plaintext_domains,
    }
}
