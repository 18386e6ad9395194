//! Why the mail may not go to a server ([`Deferral`]): each reason with
//! its enhanced status and its log text, as the policy functions of
//! `super::policy` return them.

use super::policy::Failure;
use crate::smtp::status::EnhancedStatus;

/// Why the mail may not go to this server: try the next host, then keep
/// it queued with [`status`](Deferral::status), never plaintext. The
/// text is the reason in the log, the queue state and a delay notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deferral {
    /// A forced level, and STARTTLS is not offered.
    NoStartTls,
    /// A forced level, and the handshake (or STARTTLS) failed.
    TlsFailed(Failure),
    /// Opportunistic: TLS failed and `opportunistic_fallback` is off.
    FallbackOff(Failure),
    /// A forced level, and the server refused the session right after
    /// the handshake: it wants a client certificate.
    ClientCertWanted(String),
    /// The chain does not verify, and the level needs it to.
    Untrusted(String),
    /// The certificate does not name what the level needs.
    NameMismatch(String),
    /// `pinned`, and neither the certificate nor its key is pinned.
    NotPinned,
    /// DANE made TLS mandatory, and STARTTLS, the handshake or the TLSA
    /// authentication failed (RFC 7672 §2.2).
    DaneFailed(String),
    /// DANE: this host's TLSA (or address) answer is bogus or could not
    /// be had; never read as "no DANE" (RFC 7672 §2.1.1).
    DaneHostUnusable(String),
    /// DANE: the domain's MX answer is bogus or could not be had; the
    /// domain waits, never routed by its address records (RFC 7672 §2.2.1).
    DaneMxBogus(String),
    /// DANE: the domain's MX lookup got no answer (SERVFAIL, time-out):
    /// the domain waits as for a bogus answer, but as a DNS failure
    /// (`4.4.3`), not a security one.
    DaneMxFailed(String),
    /// `tls = "dane"`, and DANE does not authenticate this host.
    DaneRequired(String),
    /// MTA-STS `enforce` (RFC 8461 §4.2): this reason, under the policy.
    MtaSts(Box<Deferral>),
    /// MTA-STS `enforce`: the host matches none of the policy's `mx`
    /// patterns (RFC 8461 §4.1); it is not contacted.
    MtaStsMxMismatch(String),
    /// REQUIRETLS (RFC 8689 §4.2.1): this reason, on the ladder a flagged
    /// message climbs as `verify-host`.
    RequireTls(Box<Deferral>),
    /// REQUIRETLS: the host is neither a smarthost nor an MX host known
    /// by DNSSEC or an MTA-STS `enforce` policy; it is not contacted.
    RequireTlsMx(String),
    /// REQUIRETLS: TLS was agreed, but its certificate was not verified
    /// (DANE encrypt-only, `verify-ca`).
    RequireTlsUnverified(String),
    /// REQUIRETLS: the server does not offer REQUIRETLS after STARTTLS.
    RequireTlsNotOffered(String),
}

impl Deferral {
    /// The enhanced status code (RFC 3463 §3.8): X.7.4 a security
    /// feature (STARTTLS) missing, X.7.1 refused (it wants a client
    /// certificate), X.7.5 TLS or the certificate not good enough.
    pub fn status(&self) -> EnhancedStatus {
        match self {
            Deferral::MtaSts(inner) | Deferral::RequireTls(inner)
                if **inner == Deferral::NoStartTls =>
            {
                EnhancedStatus::NO_SECURITY_FEATURES
            }
            Deferral::RequireTls(_)
            | Deferral::RequireTlsMx(_)
            | Deferral::RequireTlsUnverified(_)
            | Deferral::RequireTlsNotOffered(_) => EnhancedStatus::CRYPTO_FAILURE,
            Deferral::MtaSts(_) | Deferral::MtaStsMxMismatch(_) => EnhancedStatus::CRYPTO_FAILURE,
            Deferral::NoStartTls | Deferral::DaneRequired(_) => {
                EnhancedStatus::NO_SECURITY_FEATURES
            }
            Deferral::ClientCertWanted(_) => EnhancedStatus::NOT_AUTHORIZED,
            Deferral::DaneMxFailed(_) => EnhancedStatus::DNS_FAILURE,
            Deferral::TlsFailed(_)
            | Deferral::FallbackOff(_)
            | Deferral::Untrusted(_)
            | Deferral::NameMismatch(_)
            | Deferral::NotPinned
            | Deferral::DaneFailed(_)
            | Deferral::DaneHostUnusable(_)
            | Deferral::DaneMxBogus(_) => EnhancedStatus::CRYPTO_FAILURE,
        }
    }

    /// The attempt log's `dane=` word for a deferral DANE made.
    pub fn dane_word(&self) -> Option<&'static str> {
        match self {
            Deferral::DaneFailed(_) => Some("failed"),
            Deferral::DaneHostUnusable(_) => Some("host-unusable"),
            Deferral::DaneMxBogus(_) => Some("mx-bogus"),
            Deferral::DaneMxFailed(_) => Some("mx-failed"),
            Deferral::DaneRequired(_) => Some("required-missing"),
            _ => None,
        }
    }

    /// The attempt log's `sts=` word for a deferral MTA-STS made.
    pub fn sts_word(&self) -> Option<&'static str> {
        match self {
            Deferral::MtaSts(_) => Some("failed"),
            Deferral::MtaStsMxMismatch(_) => Some("mx-mismatch"),
            _ => None,
        }
    }
}

impl std::fmt::Display for Deferral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Deferral::NoStartTls => f.write_str("STARTTLS not offered"),
            Deferral::TlsFailed(Failure::Handshake(what)) => write!(f, "TLS failed: {what}"),
            Deferral::TlsFailed(failure) => write!(f, "TLS failed: {failure}"),
            Deferral::FallbackOff(failure) => {
                write!(f, "TLS failed ({failure}) and opportunistic_fallback is off")
            }
            Deferral::ClientCertWanted(what) => write!(
                f,
                "the server wants a client certificate (it refused the session right after the TLS handshake: {what})"
            ),
            Deferral::Untrusted(chain) => write!(f, "certificate not trusted: {chain}"),
            Deferral::NameMismatch(name) => f.write_str(name),
            Deferral::NotPinned => {
                f.write_str("certificate matches none of the pinned fingerprints")
            }
            Deferral::DaneFailed(what) => {
                write!(f, "DANE: TLS is mandatory for this host (TLSA), and {what}")
            }
            Deferral::DaneHostUnusable(why) => {
                write!(f, "DANE: host not usable ({why}); not read as \"no DANE\"")
            }
            Deferral::DaneMxBogus(why) => write!(
                f,
                "DANE/DNSSEC: {why}; the mail waits rather than be routed unauthenticated"
            ),
            Deferral::DaneMxFailed(why) => write!(
                f,
                "DANE/DNSSEC: {why}; the mail waits rather than be routed by unvalidated address records"
            ),
            Deferral::DaneRequired(why) => {
                write!(f, "DANE required (tls = \"dane\"), but {why}")
            }
            Deferral::MtaSts(inner) => write!(f, "MTA-STS (enforce): {inner}"),
            Deferral::MtaStsMxMismatch(host) => write!(
                f,
                "MTA-STS (enforce): {host} does not match the policy's mx patterns"
            ),
            Deferral::RequireTls(inner) => write!(f, "REQUIRETLS: {inner}"),
            Deferral::RequireTlsMx(host) => write!(
                f,
                "REQUIRETLS: MX host {host} is not authenticated (no DNSSEC-secure MX answer, no MTA-STS policy in enforce mode)"
            ),
            Deferral::RequireTlsUnverified(what) => {
                write!(f, "REQUIRETLS: the certificate is not verified ({what})")
            }
            Deferral::RequireTlsNotOffered(host) => {
                write!(f, "REQUIRETLS: {host} does not offer REQUIRETLS")
            }
        }
    }
}
