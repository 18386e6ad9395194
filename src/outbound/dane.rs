//! DANE for SMTP (RFC 7672): what DNSSEC-validated answers mean for one
//! MX host, as the table of DESIGN.md §5b says, row for row.
//!
//! This file holds the vocabulary of validated answers (the relay's
//! resolver, `crate::dns`, fills it in, as it does [`super::route::MxAnswer`])
//! and [`outcome`], a pure function from (DNSSEC status of the MX and address
//! answers, the TLSA answer) to what delivery must do with that host. The
//! certificate check itself is `crate::tls::dane`.
//!
//! Never collapse a bogus or failed answer into "no DANE": that is the
//! downgrade RFC 7672 §2.1.1 forbids (an attacker who can break a lookup
//! would otherwise turn authenticated TLS into opportunistic TLS).
//!
//! [`governs`] is DESIGN.md §5b's precedence of a connector's level and
//! a host's outcome. Routing (`super::route::plan_host`) asks the
//! validating resolver and [`outcome`]; the ladder turns
//! [`Mandatory::Authenticate`] into a verifier calling
//! `crate::tls::dane::authenticate` (SNI = the MX host) and never offers
//! plaintext or asks the broken-TLS memory under DANE.

use super::policy::Deferral;
use crate::config::values::TlsLevel;
use crate::tls::dane::Tlsa;

/// What DNSSEC validation concluded about an answer that came back
/// (records, or a denial that they exist), RFC 4035 §4.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// A chain of signatures from the trust anchor covers it.
    Secure,
    /// Provably unsigned (no DS on the way down), or validation is off.
    Insecure,
}

/// Why a validated lookup gave no answer to act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// Signatures that fail, or missing where the parent says they must
    /// be: possibly an attack (RFC 4033 §5).
    #[error("DNSSEC bogus for {name}: {reason}")]
    Bogus { name: String, reason: String },
    /// No answer: SERVFAIL, time-out, refusal.
    #[error("DNS lookup for {name} failed ({kind}): {reason}")]
    Failed {
        name: String,
        kind: FailKind,
        reason: String,
    },
}

/// How a lookup failed, for logs and metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailKind {
    ServFail,
    TimedOut,
    Refused,
    Other,
}

impl std::fmt::Display for FailKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailKind::ServFail => "SERVFAIL",
            FailKind::TimedOut => "timed out",
            FailKind::Refused => "refused",
            FailKind::Other => "error",
        })
    }
}

/// An answer with what DNSSEC says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validated<T> {
    pub value: T,
    pub security: Security,
}

/// A validated lookup: the answer, or why there is none.
pub type Checked<T> = Result<Validated<T>, Fault>;

/// The status of an MX or address lookup, all [`outcome`] needs of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Secure,
    Insecure,
    Bogus,
    Failed,
}

impl Status {
    pub fn of<T>(checked: &Checked<T>) -> Status {
        match checked {
            Ok(Validated {
                security: Security::Secure,
                ..
            }) => Status::Secure,
            Ok(_) => Status::Insecure,
            Err(Fault::Bogus { .. }) => Status::Bogus,
            Err(Fault::Failed { .. }) => Status::Failed,
        }
    }
}

/// The answer to `_PORT._tcp.HOST. TLSA` (RFC 7672 §2.2), typed so that
/// "no records" and "could not tell" can never be confused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsaAnswer {
    /// Secure and non-empty (usable or not: [`outcome`] decides).
    Records(Vec<Tlsa>),
    /// NXDOMAIN or NODATA proven by Secure NSEC/NSEC3 records.
    SecureDenial,
    /// Records or a denial in an unsigned zone (or validation is off).
    Insecure,
    Bogus(String),
    /// SERVFAIL, time-out, refusal.
    Failed {
        kind: FailKind,
        reason: String,
    },
}

/// What DANE means for one MX host (DESIGN.md §5b).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostDane {
    /// DANE was not asked: `[delivery] dane = false`, `[dns] dnssec =
    /// false`, or a connector level DANE does not govern (`none`,
    /// `verify-*`, `pinned`), or a route DNSSEC cannot vouch for
    /// (smarthosts, address literals). Never the answer of [`outcome`].
    Off,
    /// DANE does not apply: the connector's level governs, as without DANE.
    NoDane(NoDaneWhy),
    /// TLS mandatory and authenticated by these usable records (usage 2 or 3).
    Authenticate(Vec<Tlsa>),
    /// TLSA published but none usable: TLS mandatory, unauthenticated
    /// (RFC 7672 §2.2, "encrypt only").
    EncryptOnly,
    /// This host cannot be used: try the next, then defer (never plaintext).
    HostUnusable(String),
    /// The MX answer itself is bogus or failed: defer the whole domain
    /// (4.7.x), never fall back to its address records.
    DeferDomain(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoDaneWhy {
    InsecureMx,
    InsecureAddresses,
    InsecureTlsa,
    NoTlsa,
}

impl HostDane {
    /// The `dane=` word of the attempt log line and the metric label,
    /// before any handshake: an attempt under [`HostDane::Authenticate`]
    /// ends `verified` or `failed` (see [`Governs`]).
    pub fn label(&self) -> &'static str {
        match self {
            HostDane::Off => "off",
            HostDane::NoDane(NoDaneWhy::NoTlsa) => "none",
            HostDane::NoDane(_) => "insecure",
            HostDane::Authenticate(_) => "verified",
            HostDane::EncryptOnly => "encrypt-only",
            HostDane::HostUnusable(_) => "host-unusable",
            HostDane::DeferDomain(_) => "mx-bogus",
        }
    }

    /// Why DANE does not authenticate this host, for `tls = "dane"`.
    fn missing(&self) -> String {
        match self {
            HostDane::Off => "DANE is off ([delivery] dane or [dns] dnssec)".into(),
            HostDane::NoDane(NoDaneWhy::InsecureMx) => "the MX answer is not DNSSEC-signed".into(),
            HostDane::NoDane(NoDaneWhy::InsecureAddresses) => {
                "the host's address answer is not DNSSEC-signed".into()
            }
            HostDane::NoDane(NoDaneWhy::InsecureTlsa) => {
                "the TLSA answer is not DNSSEC-signed".into()
            }
            HostDane::NoDane(NoDaneWhy::NoTlsa) => "the host publishes no TLSA record".into(),
            HostDane::EncryptOnly => {
                "the host publishes no usable TLSA record (usage 2 or 3)".into()
            }
            HostDane::Authenticate(_) => "nothing".into(),
            HostDane::HostUnusable(why) | HostDane::DeferDomain(why) => why.clone(),
        }
    }
}

/// What TLS DANE makes mandatory for a host the ladder climbs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mandatory {
    /// The handshake must authenticate by these usable records; SNI is
    /// the MX host (RFC 7672 §3).
    Authenticate(Vec<Tlsa>),
    /// TLS without authentication: TLSA published, none usable.
    EncryptOnly,
}

impl Mandatory {
    /// The `dane=` word of a connection that met what DANE made
    /// mandatory (a new one, or one kept from such an attempt).
    pub fn met(&self) -> &'static str {
        match self {
            Mandatory::Authenticate(_) => "verified",
            Mandatory::EncryptOnly => "encrypt-only",
        }
    }
}

/// The `dane=` word of an attempt to a host before it succeeds, and of
/// one that did not: under DANE (`mandatory`) an attempt that does not
/// end `verified` or `encrypt-only` failed; elsewhere what the host's
/// answers said (`outside`, the [`HostDane`] label). Delivery's log and
/// `probe` both take it from here.
pub fn unmet(mandatory: Option<&Mandatory>, outside: &'static str) -> &'static str {
    match mandatory {
        Some(_) => "failed",
        None => outside,
    }
}

/// Who decides how mail goes to one host: DESIGN.md §5b's precedence of
/// a connector's level and the host's DANE outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Governs {
    /// The connector's level, as without DANE.
    Level,
    /// DANE: TLS mandatory, no plaintext rung, no broken-TLS memory, a
    /// failure defers naming DANE.
    Dane(Mandatory),
    /// Do not connect to this host: the next one, then defer.
    NextHost(Deferral),
    /// Do not deliver to this domain now: keep the mail queued.
    DeferDomain(Deferral),
}

/// DESIGN.md §5b: `none`, `verify-*` and `pinned` keep their own check;
/// DANE upgrades `opportunistic` and `required` (and mail with no
/// connector, which is `opportunistic`) where it applies; `dane` needs it.
/// An unusable host or a bogus MX answer is never "no DANE".
pub fn governs(level: TlsLevel, dane: &HostDane) -> Governs {
    use TlsLevel::{
        Dane, None as Plain, Opportunistic, Pinned, Required, VerifyCa, VerifyDomain, VerifyHost,
    };
    match (level, dane) {
        (Plain | VerifyCa | VerifyHost | VerifyDomain | Pinned, _) => Governs::Level,
        (Opportunistic | Required, HostDane::Off | HostDane::NoDane(_)) => Governs::Level,
        (Opportunistic | Required | Dane, HostDane::Authenticate(records)) => {
            Governs::Dane(Mandatory::Authenticate(records.clone()))
        }
        (Opportunistic | Required, HostDane::EncryptOnly) => Governs::Dane(Mandatory::EncryptOnly),
        (Opportunistic | Required | Dane, HostDane::HostUnusable(why)) => {
            Governs::NextHost(Deferral::DaneHostUnusable(why.clone()))
        }
        (Opportunistic | Required | Dane, HostDane::DeferDomain(why)) => {
            Governs::DeferDomain(Deferral::DaneMxBogus(why.clone()))
        }
        (Dane, HostDane::Off | HostDane::NoDane(_) | HostDane::EncryptOnly) => {
            Governs::NextHost(Deferral::DaneRequired(dane.missing()))
        }
    }
}

/// Whether DANE is asked at all for a connector's level: the levels it
/// may upgrade, and `dane` itself.
pub fn asked_for(level: TlsLevel) -> bool {
    matches!(
        level,
        TlsLevel::Opportunistic | TlsLevel::Required | TlsLevel::Dane
    )
}

/// Whether the TLSA record must be looked up at all: only when the MX
/// and the host's address answers are both secure (RFC 7672 §2.2.1).
pub fn needs_tlsa(mx: Status, addresses: Status) -> bool {
    mx == Status::Secure && addresses == Status::Secure
}

/// The table of DESIGN.md §5b. `tlsa` is `None` when it was not looked up
/// (allowed only when [`needs_tlsa`] says so; otherwise the host is unusable).
pub fn outcome(mx: Status, addresses: Status, tlsa: Option<&TlsaAnswer>) -> HostDane {
    match mx {
        // MX RRset bogus: defer the domain, no fallback to A records.
        Status::Bogus => return HostDane::DeferDomain("the MX answer is DNSSEC-bogus".into()),
        Status::Failed => return HostDane::DeferDomain("the MX lookup failed".into()),
        // MX insecure: no DANE.
        Status::Insecure => return HostDane::NoDane(NoDaneWhy::InsecureMx),
        Status::Secure => {}
    }
    match addresses {
        Status::Bogus => {
            return HostDane::HostUnusable("the host's address answer is DNSSEC-bogus".into())
        }
        Status::Failed => return HostDane::HostUnusable("the host's address lookup failed".into()),
        // The host's address records insecure: no DANE.
        Status::Insecure => return HostDane::NoDane(NoDaneWhy::InsecureAddresses),
        Status::Secure => {}
    }
    let Some(tlsa) = tlsa else {
        return HostDane::HostUnusable("TLSA not looked up".into());
    };
    match tlsa {
        // TLSA securely denied: no DANE.
        TlsaAnswer::SecureDenial => HostDane::NoDane(NoDaneWhy::NoTlsa),
        TlsaAnswer::Insecure => HostDane::NoDane(NoDaneWhy::InsecureTlsa),
        // TLSA bogus, SERVFAIL or time-out: host unusable, never "no DANE".
        TlsaAnswer::Bogus(reason) => HostDane::HostUnusable(format!("TLSA bogus: {reason}")),
        TlsaAnswer::Failed { kind, reason } => {
            HostDane::HostUnusable(format!("TLSA lookup {kind}: {reason}"))
        }
        TlsaAnswer::Records(records) => {
            let usable: Vec<Tlsa> = records.iter().filter(|r| r.usable()).cloned().collect();
            match usable.is_empty() {
                // TLSA secure with a usable record: TLS mandatory, authenticated.
                false => HostDane::Authenticate(usable),
                // TLSA secure, no usable record: TLS mandatory, unauthenticated.
                true => HostDane::EncryptOnly,
            }
        }
    }
}

#[cfg(test)]
#[path = "dane_tests.rs"]
mod tests;
