//! The TLS policy of a delivery (DESIGN.md §5) as pure functions: what a
//! connector's level makes of what the server offered and of what the
//! handshake and verification said. The delivery loop asks; it never
//! decides. Each function answers one row of the table at one column.

use crate::config::values::TlsLevel;

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send the mail without TLS.
    Plaintext,
    /// Issue STARTTLS.
    StartTls,
    /// Send the mail over the TLS session; `note` says what verification
    /// found, for the log ("verified", "untrusted: self-signed", …).
    Deliver { note: String },
    /// Try again on a new connection one rung lower (opportunistic only).
    NextRung,
    /// Do not send: try the next host, then keep the mail queued with this
    /// 4.7.x reason. Never plaintext.
    Defer { reason: String },
}

/// The rungs of the opportunistic ladder.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Rung {
    /// TLS 1.3 and 1.2, strongest suites and key exchanges first.
    Modern,
    /// TLS 1.2 only, on a new connection.
    Tls12,
    /// No STARTTLS, on a new connection.
    Plaintext,
}

impl Rung {
    pub fn below(self) -> Option<Rung> {
        match self {
            Rung::Modern => Some(Rung::Tls12),
            Rung::Tls12 => Some(Rung::Plaintext),
            Rung::Plaintext => None,
        }
    }
}

/// After EHLO: the server offered STARTTLS or not.
pub fn after_ehlo(level: TlsLevel, rung: Rung, starttls_offered: bool) -> Step {
    match (level, starttls_offered) {
        (TlsLevel::None, _) => Step::Plaintext,
        (TlsLevel::Opportunistic, _) if rung == Rung::Plaintext => Step::Plaintext,
        (_, true) => Step::StartTls,
        (TlsLevel::Opportunistic, false) => Step::Plaintext,
        (_, false) => Step::Defer {
            reason: "STARTTLS not offered".into(),
        },
    }
}

/// The STARTTLS command was refused, or the handshake failed or stalled.
/// `fallback` is `[delivery] opportunistic_fallback`.
pub fn after_failed_handshake(level: TlsLevel, rung: Rung, fallback: bool, what: &str) -> Step {
    match level {
        TlsLevel::Opportunistic => match rung.below() {
            Some(Rung::Plaintext) if !fallback => Step::Defer {
                reason: format!("TLS failed ({what}) and opportunistic_fallback is off"),
            },
            Some(_) => Step::NextRung,
            None => Step::Defer {
                reason: what.to_string(),
            },
        },
        _ => Step::Defer {
            reason: format!("TLS failed: {what}"),
        },
    }
}

/// What verification of the server's certificate found. Every check is
/// made whatever the level, so that `probe` can say which levels would
/// accept the certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checks {
    /// The chain reaches a trusted anchor, or why not.
    pub chain: Result<(), String>,
    /// The certificate names the MX or smarthost (`verify-host`, and the
    /// "name mismatch" note of the lower levels), or why not.
    pub host: Result<(), String>,
    /// The certificate names one of the connector's `tls_domains`, by
    /// default the recipient domain or a subdomain (`verify-domain`), or
    /// why not.
    pub domain: Result<(), String>,
    /// For `pinned`: the certificate or its key is one of the fingerprints.
    pub pinned: bool,
}

/// The handshake succeeded: deliver, or defer, per the level.
pub fn after_handshake(level: TlsLevel, checks: &Checks) -> Step {
    let deliver = |note: String| Step::Deliver { note };
    let defer = |reason: String| Step::Defer { reason };
    match level {
        TlsLevel::None | TlsLevel::Opportunistic | TlsLevel::Required => {
            match (&checks.chain, &checks.host) {
                (Ok(()), Ok(())) => deliver("verified".into()),
                (Ok(()), Err(name)) => deliver(format!("trusted chain, name mismatch: {name}")),
                (Err(chain), _) => deliver(format!("untrusted: {chain}")),
            }
        }
        TlsLevel::VerifyCa => match &checks.chain {
            Ok(()) => deliver("verified chain".into()),
            Err(chain) => defer(format!("certificate not trusted: {chain}")),
        },
        TlsLevel::VerifyHost | TlsLevel::VerifyDomain => {
            let name = match level {
                TlsLevel::VerifyHost => &checks.host,
                _ => &checks.domain,
            };
            match (&checks.chain, name) {
                (Ok(()), Ok(())) => deliver("verified".into()),
                (Err(chain), _) => defer(format!("certificate not trusted: {chain}")),
                (Ok(()), Err(name)) => defer(name.clone()),
            }
        }
        TlsLevel::Pinned => match checks.pinned {
            true => deliver("pinned certificate matched".into()),
            false => defer("certificate matches none of the pinned fingerprints".into()),
        },
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
