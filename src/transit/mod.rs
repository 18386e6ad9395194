//! How mail actually travelled, per destination domain and UTC day: the
//! records behind TLS-RPT aggregate reports (RFC 8460) and `tlsrelay
//! report` (DESIGN.md §5b, issue 16).
//!
//! Delivery tells a [`Sink`] of every event that matters for them: each
//! new delivery session (one connection to one MX address, or a host that
//! a policy ruled out before any connection) and each message delivered
//! over a session, new or kept. These types are the contract between
//! delivery (which builds [`Event`]s) and the store (which counts them).

use std::net::IpAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Where delivery reports events. Must be cheap: it is called once per
/// message delivered and once per session.
pub trait Sink: Send + Sync {
    fn record(&self, event: Event);
}

/// A sink that forgets everything (tests, `probe`).
pub struct Discard;

impl Sink for Discard {
    fn record(&self, _event: Event) {}
}

/// One session, or one message over a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened; the store files it under this UTC day.
    pub at: SystemTime,
    /// The policy domain: the recipient domain (A-label form).
    pub domain: String,
    pub policy: Policy,
    /// The MX host (or smarthost) name; its address when known.
    pub mx_host: String,
    pub receiving_ip: Option<IpAddr>,
    /// Our end of the connection, when one was made.
    pub sending_ip: Option<IpAddr>,
    /// How this session carried mail, or would have.
    pub method: Method,
    /// `Some("1.3")` / `Some("1.2")` when TLS was agreed.
    pub tls_version: Option<String>,
    /// Why the session failed the domain's policy (TLS-RPT
    /// `failure-details`); `None`: a successful session for TLS-RPT.
    /// Under `testing` a session can fail the policy and still deliver.
    pub failure: Option<Failure>,
    /// 1 for a new session (a connection made, or a host ruled out
    /// before one); 0 for a further message on a kept connection.
    pub sessions: u32,
    /// Messages delivered by this event (0 or 1).
    pub messages: u32,
    /// The session ended in a deferral for policy (DANE, MTA-STS, a
    /// forced level): no mail went.
    pub policy_deferred: bool,
    /// Of `messages`, those flagged REQUIRETLS (RFC 8689): 0 or 1.
    #[serde(default)]
    pub requiretls_delivered: u32,
    /// Messages flagged REQUIRETLS returned to their sender (5.7.30)
    /// because no hop for this domain met the requirement; such an event
    /// has no session and no message delivered.
    #[serde(default)]
    pub requiretls_returned: u32,
}

impl Event {
    /// The event of a message flagged REQUIRETLS returned to its sender
    /// (5.7.30) because no hop for `domain` met the requirement, at `at`:
    /// no session, no message, no failure, so it adds nothing to TLS-RPT
    /// nor to the report's method columns, only its `requiretls_returned`.
    pub fn returned_for_requiretls(at: SystemTime, domain: &str) -> Event {
        Event {
            at,
            domain: domain.to_string(),
            policy: Policy::none(),
            mx_host: "-".to_string(),
            receiving_ip: None,
            sending_ip: None,
            method: Method::Deferred,
            tls_version: None,
            failure: None,
            sessions: 0,
            messages: 0,
            policy_deferred: false,
            requiretls_delivered: 0,
            requiretls_returned: 1,
        }
    }
}

/// How a session travelled: the report's columns, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// TLS authenticated by DANE TLSA records.
    Dane,
    /// TLS authenticated under an enforced MTA-STS policy.
    MtaSts,
    /// TLS authenticated by a connector's level (`verify-*`, `pinned`).
    Connector,
    /// TLS 1.3, certificate not authenticated (or not asked).
    Tls13Unverified,
    /// TLS 1.2, certificate not authenticated (or not asked).
    Tls12Unverified,
    /// Plaintext: STARTTLS not offered, or `tls = "none"`.
    Plaintext,
    /// Plaintext after a failed TLS handshake (the opportunistic ladder).
    PlaintextAfterFailure,
    /// No mail went: deferred for policy.
    Deferred,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Method::Dane,
        Method::MtaSts,
        Method::Connector,
        Method::Tls13Unverified,
        Method::Tls12Unverified,
        Method::Plaintext,
        Method::PlaintextAfterFailure,
        Method::Deferred,
    ];

    /// The word in JSON, metrics labels and the text report.
    pub fn word(self) -> &'static str {
        match self {
            Method::Dane => "dane",
            Method::MtaSts => "mta-sts",
            Method::Connector => "connector",
            Method::Tls13Unverified => "tls13-unverified",
            Method::Tls12Unverified => "tls12-unverified",
            Method::Plaintext => "plaintext",
            Method::PlaintextAfterFailure => "plaintext-after-failure",
            Method::Deferred => "deferred",
        }
    }
}

/// The policy a session was judged by (RFC 8460 §4.3 `policy`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Policy {
    pub kind: PolicyType,
    /// `policy-string`: the MTA-STS policy's lines, or the TLSA records
    /// in presentation form; empty for `no-policy-found`.
    pub strings: Vec<String>,
    /// `mx-host`: the MTA-STS policy's `mx` patterns; empty otherwise.
    pub mx_host: Vec<String>,
}

impl Policy {
    pub fn none() -> Policy {
        Policy {
            kind: PolicyType::NoPolicyFound,
            strings: Vec::new(),
            mx_host: Vec::new(),
        }
    }
}

/// RFC 8460 §4.3 `policy-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PolicyType {
    #[serde(rename = "sts")]
    Sts,
    #[serde(rename = "tlsa")]
    Tlsa,
    #[serde(rename = "no-policy-found")]
    NoPolicyFound,
}

/// Why a session failed: RFC 8460 §4.3 `result-type` and a short detail
/// (`failure-reason-code`, the log's reason).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Failure {
    pub result_type: ResultType,
    pub detail: String,
}

/// RFC 8460 §4.3 result types (`failure-details.result-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResultType {
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateExpired,
    CertificateNotTrusted,
    ValidationFailure,
    TlsaInvalid,
    DnssecInvalid,
    DaneRequired,
    StsPolicyFetchError,
    StsPolicyInvalid,
    StsWebpkiInvalid,
}

impl ResultType {
    /// The RFC's word (`certificate-host-mismatch`).
    pub fn word(self) -> &'static str {
        match self {
            ResultType::StarttlsNotSupported => "starttls-not-supported",
            ResultType::CertificateHostMismatch => "certificate-host-mismatch",
            ResultType::CertificateExpired => "certificate-expired",
            ResultType::CertificateNotTrusted => "certificate-not-trusted",
            ResultType::ValidationFailure => "validation-failure",
            ResultType::TlsaInvalid => "tlsa-invalid",
            ResultType::DnssecInvalid => "dnssec-invalid",
            ResultType::DaneRequired => "dane-required",
            ResultType::StsPolicyFetchError => "sts-policy-fetch-error",
            ResultType::StsPolicyInvalid => "sts-policy-invalid",
            ResultType::StsWebpkiInvalid => "sts-webpki-invalid",
        }
    }
}

pub mod aggregate;
pub mod files;
pub mod journal;
pub mod report;
pub mod report_html;
pub mod report_text;
pub mod store;
pub mod tls_rpt;
mod writer;

pub use store::Store;
