//! The policy file (RFC 8461 §3.2): `key: value` lines, CRLF or LF.
//! Pure: text in, [`Policy`] or why not out; fuzzed (`fuzz/`), table- and
//! property-tested.

/// RFC 8461 §3.2: `max_age` is at most 31557600 seconds (about a year).
pub const MAX_AGE_CAP: u64 = 31_557_600;

/// What the policy asks of senders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Only the listed MX hosts, over TLS with a WebPKI-valid certificate.
    Enforce,
    /// Deliver as usual, report failures (TLS-RPT).
    Testing,
    /// No policy: senders forget any cached one.
    None,
}

impl Mode {
    pub fn word(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A parsed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// Lowercase, without a trailing dot; `*.suffix` for one label.
    pub mx: Vec<String>,
    /// Seconds, capped at [`MAX_AGE_CAP`].
    pub max_age: u64,
    /// The non-empty lines as published, trimmed (TLS-RPT's `policy-string`).
    pub lines: Vec<String>,
}

/// Why a policy file is not a policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("no \"version: STSv1\" line")]
    Version,
    #[error("no valid mode (enforce, testing or none)")]
    Mode,
    #[error("no valid max_age")]
    MaxAge,
    #[error("no mx line (required unless mode is none)")]
    NoMx,
    #[error("invalid mx pattern {0:?}")]
    BadMx(String),
    #[error("not UTF-8 text")]
    NotText,
}

/// Parses a policy file. Unknown keys are ignored (RFC 8461 §3.2); the
/// first `version`, `mode` and `max_age` count; `mx` repeats.
pub fn parse(text: &[u8]) -> Result<Policy, PolicyError> {
    let text = std::str::from_utf8(text).map_err(|_| PolicyError::NotText)?;
    let (mut version, mut mode, mut max_age) = (None, None, None);
    let mut mx = Vec::new();
    let mut lines = Vec::new();
    for line in text.split('\n') {
        // Keys and values are read trimmed, so the line is kept trimmed
        // too: a stray CR or blank at either end is not part of the
        // policy string TLS-RPT reports.
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        lines.push(line.to_string());
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "version" => {
                version.get_or_insert(value);
            }
            "mode" => {
                mode.get_or_insert(value);
            }
            "max_age" => {
                max_age.get_or_insert(value);
            }
            "mx" => mx.push(mx_pattern(value)?),
            _ => {}
        }
    }
    if version != Some("STSv1") {
        return Err(PolicyError::Version);
    }
    let mode = match mode {
        Some("enforce") => Mode::Enforce,
        Some("testing") => Mode::Testing,
        Some("none") => Mode::None,
        _ => return Err(PolicyError::Mode),
    };
    // 1*10DIGIT (RFC 8461 §3.2).
    let max_age = max_age
        .filter(|v| (1..=10).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or(PolicyError::MaxAge)?
        .min(MAX_AGE_CAP);
    if mx.is_empty() && mode != Mode::None {
        return Err(PolicyError::NoMx);
    }
    Ok(Policy {
        mode,
        mx,
        max_age,
        lines,
    })
}

/// An `mx` value as a pattern: a host name, or `*.` and a name.
fn mx_pattern(value: &str) -> Result<String, PolicyError> {
    let pattern = value.trim_end_matches('.').to_ascii_lowercase();
    let name = pattern.strip_prefix("*.").unwrap_or(&pattern);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    match !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok) {
        true => Ok(pattern),
        false => Err(PolicyError::BadMx(value.to_string())),
    }
}

impl Policy {
    /// Whether `host` (an MX host name) matches one of the `mx` patterns;
    /// `*.example.com` matches exactly one label in front (RFC 8461 §4.1).
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| pattern_matches(pattern, &host))
    }
}

fn pattern_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => pattern == host,
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
