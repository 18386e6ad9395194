//! The value types of the configuration: each parses from the text an
//! administrator writes and says what would be right when it does not.
//! Quantities and TLS settings are here; names and patterns in `names`,
//! hosts, addresses and networks in `network`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

mod names;
mod network;

pub use names::{DomainName, DomainPattern, NamePattern};
pub use network::{Cidr, Host, HostPort, ListenAddr, Nameserver};

/// Implements `Deserialize` through `FromStr`, so every value type reports
/// its own parse error (serde adds the key path, the loader the line:col).
macro_rules! deserialize_from_str {
    ($($ty:ty),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(de::Error::custom)
            }
        }
    )*};
}

deserialize_from_str!(
    DomainName,
    DomainPattern,
    NamePattern,
    HostPort,
    ListenAddr,
    Fingerprint,
    TlsVersion,
    HumanDuration,
    Cidr
);

/// A byte count written as `"25MiB"`, `"10MB"`, `"512KiB"` or a plain integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            _ => return Err(format!("invalid size {text:?}: write a number with B, KiB, MiB or GiB (or kB, MB, GB), for example \"25MiB\"")),
        };
        let number: u64 = digits.parse().map_err(|_| {
            format!(
                "invalid size {text:?}: it must start with a whole number, for example \"25MiB\""
            )
        })?;
        number
            .checked_mul(multiplier)
            .map(Size)
            .ok_or_else(|| format!("size {text:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"25MiB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (unit, name) in UNITS {
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return write!(f, "{}{name}", self.0 / unit);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// A duration written as `"30s"`, `"5m"`, `"1h30m"`, `"5d"` or `"250ms"`.
/// A bare number is refused: the unit is too easy to get wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let help = || {
            format!("invalid duration {text:?}: write a number with a unit (ms, s, m, h, d), for example \"30s\", \"5m\" or \"1h30m\"")
        };
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(help());
        }
        let mut total = Duration::ZERO;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(help)?;
            let number: u64 = rest[..digits].parse().map_err(|_| help())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let seconds_per_unit = match &rest[..unit_len] {
                "ms" => None,
                "s" => Some(1),
                "m" => Some(60),
                "h" => Some(3_600),
                "d" => Some(86_400),
                "w" => Some(7 * 86_400),
                _ => return Err(help()),
            };
            let part = match seconds_per_unit {
                None => Some(Duration::from_millis(number)),
                Some(unit) => number.checked_mul(unit).map(Duration::from_secs),
            };
            total = part
                .and_then(|p| total.checked_add(p))
                .ok_or_else(|| format!("duration {text:?} is too long"))?;
            rest = &rest[unit_len..];
        }
        Ok(HumanDuration(total))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let millis = self.0.as_millis();
        if !millis.is_multiple_of(1000) {
            return write!(f, "{millis}ms");
        }
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str("0s");
        }
        for (unit, name) in [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")] {
            if secs >= unit {
                write!(f, "{}{name}", secs / unit)?;
                secs %= unit;
            }
        }
        Ok(())
    }
}

/// A pinned certificate or public key: `sha256:` and 64 hex digits, as
/// `tlsrelay cert-info` prints its pins; colons between byte pairs are
/// accepted, and so is the line `openssl x509 -fingerprint -sha256` prints
/// (`sha256 Fingerprint=AB:CD:…`, or just `AB:CD:…`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl FromStr for Fingerprint {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let help = format!(
            "invalid fingerprint {text:?}: write \"sha256:\" and 64 hex digits (a pin `tlsrelay cert-info` prints), or the AB:CD:… that `openssl x509 -fingerprint -sha256` prints"
        );
        let lower = text.trim().to_ascii_lowercase();
        let (digits, colons_required) = match lower
            .strip_prefix("sha256:")
            .or_else(|| lower.strip_prefix("sha256 fingerprint="))
        {
            Some(rest) => (rest, false),
            // Without a prefix, only openssl's colon-separated form: a bare
            // run of hex could be any kind of digest.
            None => (lower.as_str(), true),
        };
        let hex: String = digits.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.is_ascii() || (colons_required && digits.len() != 95) {
            return Err(help);
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| help.clone())?;
        }
        Ok(Fingerprint(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A TLS protocol version floor. TLS 1.0 and 1.1 are never offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl FromStr for TlsVersion {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            "1.0" | "1.1" => Err(format!(
                "TLS {text} is not offered: it is broken; use \"1.2\" or \"1.3\""
            )),
            _ => Err(format!(
                "invalid TLS version {text:?}: use \"1.2\" or \"1.3\""
            )),
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        })
    }
}

/// How an outbound connector protects a hop (DESIGN.md §5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsLevel {
    /// Plaintext; STARTTLS is never tried.
    None,
    /// TLS when the server can do it, down the ladder, finally plaintext.
    #[default]
    Opportunistic,
    /// TLS or no delivery; any certificate.
    Required,
    /// TLS with a chain to a trusted CA; any name.
    VerifyCa,
    /// As `verify-ca`, and the certificate names the MX or smarthost.
    VerifyHost,
    /// As `verify-ca`, and the certificate names one of `tls_domains`.
    VerifyDomain,
    /// TLS with a certificate or public key whose SHA-256 is listed.
    Pinned,
    /// DANE required (RFC 7672, DESIGN.md §5b): TLS authenticated by the
    /// MX host's DNSSEC-secure TLSA records; a host without usable secure
    /// TLSA is not used, so mail defers (Postfix's `dane-only`).
    Dane,
}

/// `[[outbound]] requiretls` (RFC 8689, DESIGN.md §5b), like Postfix's
/// `smtp_requiretls_policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequireTlsPolicy {
    /// A flagged message goes only to an authenticated hop, over verified
    /// TLS, that offers REQUIRETLS; else it is returned (5.7.30).
    #[default]
    Enforce,
    /// The flag is ignored for this connector (a known internal next
    /// hop); it is still passed on where the server offers REQUIRETLS.
    Off,
}

impl fmt::Display for RequireTlsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            RequireTlsPolicy::Enforce => "enforce",
            RequireTlsPolicy::Off => "off",
        })
    }
}

impl TlsLevel {
    /// True for the levels that never send mail in plaintext.
    pub fn is_forced(self) -> bool {
        !matches!(self, TlsLevel::None | TlsLevel::Opportunistic)
    }
}

impl fmt::Display for TlsLevel {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            TlsLevel::None => "none",
            TlsLevel::Opportunistic => "opportunistic",
            TlsLevel::Required => "required",
            TlsLevel::VerifyCa => "verify-ca",
            TlsLevel::VerifyHost => "verify-host",
            TlsLevel::VerifyDomain => "verify-domain",
            TlsLevel::Pinned => "pinned",
            TlsLevel::Dane => "dane",
        })
    }
}

#[cfg(test)]
#[path = "values_tests.rs"]
mod tests;
