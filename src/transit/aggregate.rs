//! The counts of one UTC day: per destination domain and policy, what
//! TLS-RPT (RFC 8460 §4.4) and `tlsrelay report` need. Pure data, built
//! by folding [`Event`]s in and merged across files; the store keeps one
//! per day in memory, the day's snapshot file is one serialized.
//!
//! Bounded: the store caps the domains of a day (`store::DOMAIN_LIMIT`),
//! and each policy record keeps at most [`FAILURE_DETAIL_LIMIT`] distinct
//! failure details; further distinct ones are counted in one detail per
//! result type whose MX host is [`OTHER_DETAIL`] and addresses are empty,
//! so the totals stay exact and no snapshot grows without limit.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Event, Method, Policy, ResultType};

/// The domain under which events beyond the per-day bound are counted.
pub const OTHER_DOMAIN: &str = "(other)";

/// Distinct failure details (RFC 8460 `failure-details` keys) kept per
/// policy record of a domain; beyond, merged per result type.
pub const FAILURE_DETAIL_LIMIT: usize = 100;

/// The MX host of the detail that counts failures beyond the limit.
pub const OTHER_DETAIL: &str = "(other)";

/// One UTC day (`YYYY-MM-DD`): each destination domain's counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCounts {
    pub domains: BTreeMap<String, DomainCounts>,
}

/// One domain on one day: a record per policy its sessions were judged by
/// (usually one; two when the policy changed during the day), and the
/// messages flagged REQUIRETLS (RFC 8689) delivered to it and returned
/// for it. Those two are no policy's: a returned message had no session,
/// and TLS-RPT reports only sessions. Written only when not 0, so the
/// snapshot of a day without flagged mail reads the same as before them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainCounts {
    pub policies: Vec<PolicyCounts>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requiretls_delivered: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requiretls_returned: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The sessions and messages judged by one policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyCounts {
    pub policy: Policy,
    /// TLS-RPT `total-successful-session-count`.
    pub successful_sessions: u64,
    /// TLS-RPT `total-failure-session-count`.
    pub failed_sessions: u64,
    /// TLS-RPT `failure-details`, one per distinct key.
    #[serde(default)]
    pub failures: Vec<FailureCount>,
    #[serde(default)]
    pub messages_by_method: BTreeMap<Method, u64>,
    #[serde(default)]
    pub sessions_by_method: BTreeMap<Method, u64>,
    /// Sessions by TLS version agreed (`1.3`, `1.2`).
    #[serde(default)]
    pub tls_versions: BTreeMap<String, u64>,
    /// Sessions that ended in a deferral for policy.
    #[serde(default)]
    pub policy_deferrals: u64,
}

/// Failed sessions with the same result type, sending IP, MX host and
/// receiving IP (the RFC's failure-details key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCount {
    pub result_type: ResultType,
    pub sending_ip: Option<IpAddr>,
    pub mx_host: String,
    pub receiving_ip: Option<IpAddr>,
    pub sessions: u64,
    /// The detail of the first such failure (`failure-reason-code`).
    pub detail: String,
}

impl PolicyCounts {
    fn new(policy: Policy) -> PolicyCounts {
        PolicyCounts {
            policy,
            successful_sessions: 0,
            failed_sessions: 0,
            failures: Vec::new(),
            messages_by_method: BTreeMap::new(),
            sessions_by_method: BTreeMap::new(),
            tls_versions: BTreeMap::new(),
            policy_deferrals: 0,
        }
    }

    /// Folds one event in (its domain and policy are the caller's key).
    fn add(&mut self, event: &Event) {
        let sessions = u64::from(event.sessions);
        let messages = u64::from(event.messages);
        if messages > 0 {
            *self.messages_by_method.entry(event.method).or_default() += messages;
        }
        if sessions == 0 {
            return;
        }
        *self.sessions_by_method.entry(event.method).or_default() += sessions;
        if let Some(version) = &event.tls_version {
            *self.tls_versions.entry(version.clone()).or_default() += sessions;
        }
        if event.policy_deferred {
            self.policy_deferrals += sessions;
        }
        let Some(failure) = &event.failure else {
            self.successful_sessions += sessions;
            return;
        };
        self.failed_sessions += sessions;
        add_failure(
            &mut self.failures,
            FailureCount {
                result_type: failure.result_type,
                sending_ip: event.sending_ip,
                mx_host: event.mx_host.clone(),
                receiving_ip: event.receiving_ip,
                sessions,
                detail: failure.detail.clone(),
            },
        );
    }

    /// Adds another record of the same policy.
    fn merge(&mut self, other: PolicyCounts) {
        self.successful_sessions += other.successful_sessions;
        self.failed_sessions += other.failed_sessions;
        for failure in other.failures {
            add_failure(&mut self.failures, failure);
        }
        add_maps(&mut self.messages_by_method, other.messages_by_method);
        add_maps(&mut self.sessions_by_method, other.sessions_by_method);
        add_maps(&mut self.tls_versions, other.tls_versions);
        self.policy_deferrals += other.policy_deferrals;
    }
}

/// Counts `failure` under its key, or under its result type's
/// [`OTHER_DETAIL`] once [`FAILURE_DETAIL_LIMIT`] keys are known.
fn add_failure(failures: &mut Vec<FailureCount>, mut failure: FailureCount) {
    let same = |f: &FailureCount, of: &FailureCount| {
        f.result_type == of.result_type
            && f.sending_ip == of.sending_ip
            && f.mx_host == of.mx_host
            && f.receiving_ip == of.receiving_ip
    };
    if let Some(known) = failures.iter_mut().find(|f| same(f, &failure)) {
        known.sessions += failure.sessions;
        return;
    }
    let distinct = failures
        .iter()
        .filter(|f| f.mx_host != OTHER_DETAIL)
        .count();
    if distinct >= FAILURE_DETAIL_LIMIT || failure.mx_host == OTHER_DETAIL {
        failure.sending_ip = None;
        failure.receiving_ip = None;
        failure.mx_host = OTHER_DETAIL.to_string();
        failure.detail = format!(
            "more than {FAILURE_DETAIL_LIMIT} distinct failure details: the rest counted together"
        );
        if let Some(known) = failures.iter_mut().find(|f| same(f, &failure)) {
            known.sessions += failure.sessions;
            return;
        }
    }
    failures.push(failure);
}

fn add_maps<K: Ord>(into: &mut BTreeMap<K, u64>, from: BTreeMap<K, u64>) {
    for (key, n) in from {
        *into.entry(key).or_default() += n;
    }
}

impl DomainCounts {
    /// Whether a session or a message was counted for the domain, that
    /// is, whether a TLS-RPT report has anything to say of it: a domain
    /// whose flagged mail was only returned has no session.
    pub fn has_sessions(&self) -> bool {
        !self.policies.is_empty()
    }

    fn policy(&mut self, policy: &Policy) -> &mut PolicyCounts {
        let at = match self.policies.iter().position(|p| &p.policy == policy) {
            Some(at) => at,
            None => {
                self.policies.push(PolicyCounts::new(policy.clone()));
                self.policies.len() - 1
            }
        };
        &mut self.policies[at]
    }
}

impl DayCounts {
    /// Folds one event in under `event.domain` (already bounded by the
    /// caller: see [`DayCounts::is_full_for`]). An event with neither a
    /// session nor a message (a flagged message returned) counts for the
    /// domain alone and opens no policy record.
    pub fn add(&mut self, event: &Event) {
        let domain = self.domains.entry(event.domain.clone()).or_default();
        domain.requiretls_delivered += u64::from(event.requiretls_delivered);
        domain.requiretls_returned += u64::from(event.requiretls_returned);
        if event.sessions > 0 || event.messages > 0 {
            domain.policy(&event.policy).add(event);
        }
    }

    /// The domains a TLS-RPT report is made for: counted by name (not
    /// [`OTHER_DOMAIN`]) and with a session.
    pub fn reported_domains(&self) -> impl Iterator<Item = (&String, &DomainCounts)> {
        self.domains
            .iter()
            .filter(|(domain, counts)| domain.as_str() != OTHER_DOMAIN && counts.has_sessions())
    }

    /// Whether an event for `domain` must be counted under
    /// [`OTHER_DOMAIN`]: `limit` other domains are counted this day.
    pub fn is_full_for(&self, domain: &str, limit: usize) -> bool {
        !self.domains.contains_key(domain) && self.domains.len() >= limit
    }

    /// Adds the counts of another file of the same day.
    pub fn merge(&mut self, other: DayCounts) {
        for (domain, counts) in other.domains {
            let into = self.domains.entry(domain).or_default();
            into.requiretls_delivered += counts.requiretls_delivered;
            into.requiretls_returned += counts.requiretls_returned;
            for policy in counts.policies {
                into.policy(&policy.policy.clone()).merge(policy);
            }
        }
    }
}
