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
//! Left for the wiring into the delivery ladder (issue 15, after issue 14):
//! route by [`crate::dns::Dns::mx_checked`] and look up addresses with
//! `addresses_checked` (skip the TLSA query when [`needs_tlsa`] is false);
//! turn [`HostDane::Authenticate`] into a rustls verifier calling
//! `crate::tls::dane::authenticate` with SNI = the MX host;
//! [`HostDane::EncryptOnly`] and `Authenticate` remove the plaintext rung
//! and bypass the broken-TLS memory; [`HostDane::HostUnusable`] moves to
//! the next MX and [`HostDane::DeferDomain`] defers with a 4.7.x reason
//! naming DANE (map both onto the ladder's Deferral type); the connector
//! precedence of DESIGN.md §5b (DANE upgrades `opportunistic` and
//! `required`; `none`, `verify-*`, `pinned` keep theirs); the new level
//! `tls = "dane"` (defer when [`HostDane::NoDane`]); `[delivery] dane`;
//! the `dane=` word of the attempt log line and its metric label
//! ([`HostDane::label`]); `probe` printing the same outcome and each
//! record's [`crate::tls::dane::check_record`].

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
    /// The `dane=` word of the attempt log line and the metric label.
    pub fn label(&self) -> &'static str {
        match self {
            HostDane::NoDane(NoDaneWhy::NoTlsa) => "none",
            HostDane::NoDane(_) => "insecure",
            HostDane::Authenticate(_) => "required",
            HostDane::EncryptOnly => "no-usable-tlsa",
            HostDane::HostUnusable(_) => "host-unusable",
            HostDane::DeferDomain(_) => "mx-bogus",
        }
    }
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
