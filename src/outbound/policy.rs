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
    /// 4.7.x enhanced status code (RFC 3463) and reason. Never plaintext.
    Defer { code: &'static str, reason: String },
}

/// The enhanced status codes of a policy deferral (RFC 3463 §3.8).
pub mod code {
    /// X.7.1: the server refused us: it wants a client certificate.
    pub const NOT_AUTHORIZED: &str = "4.7.1";
    /// X.7.4: STARTTLS, a security feature the level needs, is missing.
    pub const NO_STARTTLS: &str = "4.7.4";
    /// X.7.5: the handshake failed, or the certificate is not good enough.
    pub const TLS_FAILED: &str = "4.7.5";
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

/// After EHLO: the server offered STARTTLS or not.
pub fn after_ehlo(level: TlsLevel, rung: Rung, starttls_offered: bool) -> Step {
    match (level, starttls_offered) {
        (TlsLevel::None, _) => Step::Plaintext,
        (TlsLevel::Opportunistic, _) if rung == Rung::Plaintext => Step::Plaintext,
        (_, true) => Step::StartTls,
        (TlsLevel::Opportunistic, false) => Step::Plaintext,
        (_, false) => Step::Defer {
            code: code::NO_STARTTLS,
            reason: "STARTTLS not offered".into(),
        },
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
pub fn after_failure(level: TlsLevel, rung: Rung, fallback: bool, failure: &Failure) -> Step {
    let defer = |code, reason| Step::Defer { code, reason };
    match (level, failure) {
        (TlsLevel::Opportunistic, _) => match rung.below() {
            Some(Rung::Plaintext) if !fallback => defer(
                code::TLS_FAILED,
                format!("TLS failed ({failure}) and opportunistic_fallback is off"),
            ),
            Some(_) => Step::NextRung,
            None => defer(code::TLS_FAILED, failure.to_string()),
        },
        (_, Failure::Handshake(what)) => defer(code::TLS_FAILED, format!("TLS failed: {what}")),
        (_, Failure::RefusedAfterTls(what)) => defer(
            code::NOT_AUTHORIZED,
            format!("the server wants a client certificate (it refused the session right after the TLS handshake: {what})"),
        ),
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
/// DANE and MTA-STS (DESIGN.md §5b), once they govern a destination,
/// veto it here too: this is the one place that decides.
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
    let defer = |reason: String| Step::Defer {
        code: code::TLS_FAILED,
        reason,
    };
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
