//! The TLS policy of a delivery (DESIGN.md §5) as pure functions: what a
//! connector's level makes of what the server offered and of what the
//! handshake and verification said. The delivery loop asks; it never
//! decides. Each function answers one row of the table at one column.

use rustls::SupportedProtocolVersion;

use super::dane::Mandatory;
pub use super::deferral::Deferral;
use crate::config::values::{TlsLevel, TlsVersion};

/// What the EHLO reply leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterEhlo {
    /// Send the mail without TLS, for this reason.
    Plaintext(Plaintext),
    /// Issue STARTTLS.
    StartTls,
    /// Do not send (see [`Deferral`]).
    Defer(Deferral),
}

/// Why mail goes without TLS; its text is the attempt log's `tls` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plaintext {
    /// `tls = "none"`.
    LevelNone,
    /// The server did not offer STARTTLS (opportunistic).
    NotOffered,
    /// The broken-TLS memory started the ladder on its last rung.
    MemorySkipped,
    /// TLS failed on every rung above (opportunistic, fallback on).
    LowerRungs,
}

impl Plaintext {
    /// Whether STARTTLS was on offer and not used: the mail fell back,
    /// so its recipients' DSNs and the metrics say so.
    pub fn is_fallback(self) -> bool {
        matches!(self, Plaintext::MemorySkipped | Plaintext::LowerRungs)
    }
}

impl std::fmt::Display for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Plaintext::LevelNone => "plaintext (tls = none)",
            Plaintext::NotOffered => "plaintext (STARTTLS not offered)",
            Plaintext::MemorySkipped => "plaintext (the broken-TLS memory skipped the TLS rungs)",
            Plaintext::LowerRungs => "plaintext (TLS failed on higher rungs)",
        })
    }
}

/// What a failed rung leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again on a new connection on this lower rung (opportunistic only).
    NextRung(Rung),
    Defer(Deferral),
}

/// What a completed handshake (its EHLO answered) leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterHandshake {
    /// Send the mail over the TLS session.
    Deliver(Note),
    Defer(Deferral),
}

/// What verification found, for the log line of a delivery over TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// Chain and name (host or domain, per the level) verified.
    Verified,
    /// `verify-ca`: the chain verified; the name is not its concern.
    VerifiedChain,
    /// Below `verify-ca`: the chain verified, the name did not match.
    NameMismatch(String),
    /// Below `verify-ca`: the chain did not verify.
    Untrusted(String),
    /// `pinned`: the certificate or its key is pinned.
    Pinned,
    /// DANE: a TLSA record of this usage (2 or 3) authenticated the server.
    DaneVerified { usage: u8 },
    /// DANE: TLSA published, none usable; TLS without authentication.
    DaneEncryptOnly,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::Verified => f.write_str("verified"),
            Note::VerifiedChain => f.write_str("verified chain"),
            Note::NameMismatch(name) => write!(f, "trusted chain, name mismatch: {name}"),
            Note::Untrusted(chain) => write!(f, "untrusted: {chain}"),
            Note::Pinned => f.write_str("pinned certificate matched"),
            Note::DaneVerified { usage } => write!(f, "DANE verified (TLSA usage {usage})"),
            Note::DaneEncryptOnly => f.write_str("DANE encrypt-only (no usable TLSA record)"),
        }
    }
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
    /// Its name in the log, `probe` and `tls-memory list`.
    pub fn name(self) -> &'static str {
        match self {
            Rung::Modern => "modern",
            Rung::Tls12 => "tls12",
            Rung::Plaintext => "plaintext",
        }
    }

    pub fn below(self) -> Option<Rung> {
        match self {
            Rung::Modern => Some(Rung::Tls12),
            Rung::Tls12 => Some(Rung::Plaintext),
            Rung::Plaintext => None,
        }
    }
}

/// After EHLO: the server offered STARTTLS or not. `memory_start` says
/// that the broken-TLS memory put the ladder on `rung` (for the log).
pub fn after_ehlo(
    level: TlsLevel,
    rung: Rung,
    memory_start: bool,
    starttls_offered: bool,
) -> AfterEhlo {
    match (level, starttls_offered) {
        (TlsLevel::None, _) => AfterEhlo::Plaintext(Plaintext::LevelNone),
        (TlsLevel::Opportunistic, false) => AfterEhlo::Plaintext(Plaintext::NotOffered),
        (TlsLevel::Opportunistic, true) if rung == Rung::Plaintext => {
            AfterEhlo::Plaintext(match memory_start {
                true => Plaintext::MemorySkipped,
                false => Plaintext::LowerRungs,
            })
        }
        (_, true) => AfterEhlo::StartTls,
        (TlsLevel::Dane, false) => AfterEhlo::Defer(Deferral::DaneFailed(
            "the server does not offer STARTTLS".into(),
        )),
        (_, false) => AfterEhlo::Defer(Deferral::NoStartTls),
    }
}

/// The TLS versions a rung offers, or why it cannot run: the modern rung
/// offers TLS 1.3 and 1.2, the lower one TLS 1.2 only, and neither goes
/// below the connector's `min_tls_version`.
pub fn tls_versions(
    rung: Rung,
    minimum: TlsVersion,
) -> Result<&'static [&'static SupportedProtocolVersion], Failure> {
    static MODERN: [&SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static ONLY_13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    static ONLY_12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    match (rung, minimum) {
        (Rung::Modern, TlsVersion::Tls12) => Ok(&MODERN),
        (Rung::Modern, TlsVersion::Tls13) => Ok(&ONLY_13),
        (_, TlsVersion::Tls12) => Ok(&ONLY_12),
        (_, TlsVersion::Tls13) => Err(Failure::Handshake(
            "TLS 1.2 is below min_tls_version".into(),
        )),
    }
}

/// How TLS failed on one rung.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The STARTTLS command was refused, or the handshake failed or stalled.
    Handshake(String),
    /// The handshake completed, then the server refused EHLO or closed the
    /// connection. A TLS 1.3 server that wants a client certificate says
    /// so only now: the client's part of the handshake is over before the
    /// server has judged its (missing) certificate (RFC 8446 §4.4.2.4).
    RefusedAfterTls(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Handshake(what) => f.write_str(what),
            Failure::RefusedAfterTls(what) => {
                write!(f, "refused right after the TLS handshake: {what}")
            }
        }
    }
}

/// TLS failed on `rung`: for `opportunistic` a failed rung (the next one
/// on a new connection, finally plaintext); for the forced levels a
/// deferral. `fallback` is `[delivery] opportunistic_fallback`.
pub fn after_failure(
    level: TlsLevel,
    rung: Rung,
    fallback: bool,
    failure: &Failure,
) -> AfterFailure {
    let defer = AfterFailure::Defer;
    match (level, failure) {
        // Under DANE no lower rung: TLS 1.2 would authenticate no better,
        // and the one below it is plaintext.
        (TlsLevel::Dane, _) => defer(Deferral::DaneFailed(format!("TLS failed: {failure}"))),
        (TlsLevel::Opportunistic, _) => match rung.below() {
            Some(Rung::Plaintext) if !fallback => defer(Deferral::FallbackOff(failure.clone())),
            Some(lower) => AfterFailure::NextRung(lower),
            None => defer(Deferral::TlsFailed(failure.clone())),
        },
        (_, Failure::Handshake(_)) => defer(Deferral::TlsFailed(failure.clone())),
        (_, Failure::RefusedAfterTls(what)) => defer(Deferral::ClientCertWanted(what.clone())),
    }
}

/// What the broken-TLS memory knows of one rung of one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remembered {
    /// Nothing, or not enough to act on.
    No,
    /// Confirmed broken (DESIGN.md §5): skip it.
    Broken,
    /// Confirmed broken, and its hourly retry is due: try it first.
    RetryDue,
}

/// Whether the broken-TLS memory may move where the ladder starts. Only
/// under `opportunistic`: a forced level tries the top rung and defers.
/// DANE (DESIGN.md §5b), once it governs a host, makes the ladder's level
/// `dane` (see `super::ladder::Ladder::level`), vetoed here like every
/// forced level: this is the one place that decides.
pub fn memory_applies(level: TlsLevel) -> bool {
    level == TlsLevel::Opportunistic
}

/// Where the ladder starts, and what the memory did to get there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    pub rung: Rung,
    /// The rungs skipped because they are remembered as broken.
    pub skipped: Vec<Rung>,
    /// A remembered rung tried first all the same (its hourly retry).
    pub retried: Option<Rung>,
}

impl Start {
    /// The top rung, the memory not asked or saying nothing.
    pub const TOP: Start = Start {
        rung: Rung::Modern,
        skipped: Vec::new(),
        retried: None,
    };

    /// For the attempt's log line and `probe`: `-` when the memory did
    /// not decide, else `skipped-rung-modern`, `retried-rung-tls12`, …
    pub fn note(&self) -> String {
        let mut parts: Vec<String> = self
            .skipped
            .iter()
            .map(|r| format!("skipped-rung-{}", r.name()))
            .collect();
        parts.extend(self.retried.map(|r| format!("retried-rung-{}", r.name())));
        match parts.is_empty() {
            true => "-".into(),
            false => parts.join(","),
        }
    }
}

/// The first rung of the ladder: the top one, unless the memory applies
/// and remembers it as broken and not due for its hourly retry; then the
/// next one, and so on. Never plaintext when `fallback` is off.
pub fn first_rung(
    level: TlsLevel,
    fallback: bool,
    remembered: impl Fn(Rung) -> Remembered,
) -> Start {
    let mut start = Start::TOP;
    if !memory_applies(level) {
        return start;
    }
    loop {
        match remembered(start.rung) {
            Remembered::No => return start,
            Remembered::RetryDue => {
                start.retried = Some(start.rung);
                return start;
            }
            Remembered::Broken => match start.rung.below() {
                Some(Rung::Plaintext) if !fallback => return start,
                Some(lower) => {
                    start.skipped.push(start.rung);
                    start.rung = lower;
                }
                None => return start,
            },
        }
    }
}

pub use crate::tls::verify::Checks;

/// The handshake succeeded: deliver, or defer, per the level.
pub fn after_handshake(level: TlsLevel, checks: &Checks) -> AfterHandshake {
    use AfterHandshake::{Defer, Deliver};
    match level {
        TlsLevel::None | TlsLevel::Opportunistic | TlsLevel::Required => {
            match (&checks.chain, &checks.host) {
                (Ok(()), Ok(())) => Deliver(Note::Verified),
                (Ok(()), Err(name)) => Deliver(Note::NameMismatch(name.clone())),
                (Err(chain), _) => Deliver(Note::Untrusted(chain.clone())),
            }
        }
        TlsLevel::VerifyCa => match &checks.chain {
            Ok(()) => Deliver(Note::VerifiedChain),
            Err(chain) => Defer(Deferral::Untrusted(chain.clone())),
        },
        TlsLevel::VerifyHost | TlsLevel::VerifyDomain => {
            let name = match level {
                TlsLevel::VerifyHost => &checks.host,
                _ => &checks.domain,
            };
            match (&checks.chain, name) {
                (Ok(()), Ok(())) => Deliver(Note::Verified),
                (Err(chain), _) => Defer(Deferral::Untrusted(chain.clone())),
                (Ok(()), Err(name)) => Defer(Deferral::NameMismatch(name.clone())),
            }
        }
        TlsLevel::Pinned => match checks.pinned {
            true => Deliver(Note::Pinned),
            false => Defer(Deferral::NotPinned),
        },
        // Only with what DANE found: see [`after_dane_handshake`].
        TlsLevel::Dane => Defer(Deferral::DaneRequired("no TLSA record was checked".into())),
    }
}

/// The handshake succeeded under DANE (the level `dane`, or a level DANE
/// upgraded): deliver when the TLSA records authenticated the server
/// (`authenticated`: the usage of the record that did, or why none did),
/// or when they make TLS only mandatory; otherwise defer naming DANE.
pub fn after_dane_handshake(
    mandatory: &Mandatory,
    authenticated: Option<&Result<u8, String>>,
) -> AfterHandshake {
    match (mandatory, authenticated) {
        (Mandatory::EncryptOnly, _) => AfterHandshake::Deliver(Note::DaneEncryptOnly),
        (Mandatory::Authenticate(_), Some(Ok(usage))) => {
            AfterHandshake::Deliver(Note::DaneVerified { usage: *usage })
        }
        (Mandatory::Authenticate(_), Some(Err(why))) => AfterHandshake::Defer(
            Deferral::DaneFailed(format!("authentication failed: {why}")),
        ),
        (Mandatory::Authenticate(_), None) => AfterHandshake::Defer(Deferral::DaneFailed(
            "the certificate was not checked against the TLSA records".into(),
        )),
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
