//! The label sets (structs) and closed label values (enums) of the
//! metric families in `super`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use crate::transit::Method;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct SessionLabels {
    pub(super) connector: String,
    pub(super) tls: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ConnectorLabels {
    pub(super) connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResultLabels {
    pub(super) result: RecipientResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct NoticeLabels {
    pub(super) kind: NoticeKind,
}

/// How a session or message travelled (`crate::transit`): closed sets
/// both, so the family has at most 8 × 3 series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TransitLabels {
    pub(super) method: Method,
    pub(super) tls: TransitTls,
}

/// The TLS version label of the transit families.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(super) enum TransitTls {
    V13,
    V12,
    None,
}

impl EncodeLabelValue for TransitTls {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match self {
            TransitTls::V13 => "1.3",
            TransitTls::V12 => "1.2",
            TransitTls::None => "none",
        }
        .encode(encoder)
    }
}

impl EncodeLabelValue for Method {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        self.word().encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CertificateLabels {
    pub(super) certificate: String,
}

/// The labels of one delivery attempt, in the order they are shown.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// The outbound connector's name, `-` for MX delivery without one.
    pub connector: String,
    /// The TLS level asked.
    pub level: String,
    /// `TLSv1.3`, `TLSv1.2`, `plaintext`, `plaintext_fallback` or `-`.
    pub tls: String,
    pub cipher: String,
    /// `sent`, `deferred_for_policy`, `tls_rung_failed`, `connect_failed`,
    /// `refused_after_tls`.
    pub outcome: &'static str,
    /// What DANE decided (`crate::outbound::dane`): `off`, `insecure`,
    /// `none`, `verified`, `encrypt-only`, `failed`, … (README, "DANE").
    pub dane: &'static str,
}

/// What became of one recipient in one attempt.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RecipientResult {
    Delivered,
    Deferred,
    Failed,
}

impl EncodeLabelValue for RecipientResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match self {
            RecipientResult::Delivered => "delivered",
            RecipientResult::Deferred => "deferred",
            RecipientResult::Failed => "failed",
        }
        .encode(encoder)
    }
}

/// Which delivery status notification was queued.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum NoticeKind {
    /// A bounce.
    Failure,
    Delay,
}

impl EncodeLabelValue for NoticeKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match self {
            NoticeKind::Failure => "failure",
            NoticeKind::Delay => "delay",
        }
        .encode(encoder)
    }
}

/// What became of one TLS-RPT report for one destination (`crate::tls_rpt`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReportResult {
    /// POSTed to an `https:` rua, 2xx.
    Posted,
    /// Queued as mail to a `mailto:` rua.
    Queued,
    /// A try failed (tried again later).
    Failed,
    /// Still failing a day after the first try: given up.
    GivenUp,
}

impl EncodeLabelValue for ReportResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match self {
            ReportResult::Posted => "posted",
            ReportResult::Queued => "queued",
            ReportResult::Failed => "failed",
            ReportResult::GivenUp => "given-up",
        }
        .encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReportLabels {
    pub(super) result: ReportResult,
}

/// What became of a message flagged REQUIRETLS (RFC 8689).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RequireTlsOutcome {
    /// Taken on a TLS session and on disk (once per message).
    Accepted,
    /// Delivered to one destination domain over an authenticated hop
    /// that offered REQUIRETLS.
    Delivered,
    /// Returned to its sender for one destination domain (5.7.30).
    Returned,
}

impl EncodeLabelValue for RequireTlsOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match self {
            RequireTlsOutcome::Accepted => "accepted",
            RequireTlsOutcome::Delivered => "delivered",
            RequireTlsOutcome::Returned => "returned",
        }
        .encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RequireTlsLabels {
    pub(super) outcome: RequireTlsOutcome,
}
