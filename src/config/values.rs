//! The value types of the configuration: each parses from the text an
//! administrator writes and says what would be right when it does not.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::domain::{DomainError, MailDomain};

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

/// A DNS name in its canonical form (src/config/domain.rs): IDNA 2008
/// A-labels after the UTS #46 mapping, lower case, no trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

impl DomainName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `self` is `other` or one of its subdomains.
    pub fn is_within(&self, other: &DomainName) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.ends_with(&other.0)
                && self.0.as_bytes()[self.0.len() - other.0.len() - 1] == b'.')
    }
}

/// Through [`super::domain::canonical`]: U-labels, upper case and
/// compatibility forms are accepted and mapped to the A-label form.
impl FromStr for DomainName {
    type Err = super::domain::DomainError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        super::domain::canonical(text).map(DomainName)
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which recipient domains a connector claims: `example.test`,
/// `*.example.test` (its subdomains, not itself), `[192.0.2.1]` (an
/// address literal, RFC 5321 §4.1.3) or `*` (everything else, address
/// literals included). Names are canonical (A-labels), so a U-label in
/// the configuration matches the same domain however a client spells it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    Exact(DomainName),
    Subdomains(DomainName),
    Literal(IpAddr),
    Any,
}

impl DomainPattern {
    pub fn matches(&self, domain: &MailDomain) -> bool {
        match (self, domain) {
            (DomainPattern::Any, _) => true,
            (DomainPattern::Exact(name), MailDomain::Name(domain)) => name == domain,
            (DomainPattern::Subdomains(parent), MailDomain::Name(domain)) => {
                domain != parent && domain.is_within(parent)
            }
            (DomainPattern::Literal(ip), MailDomain::Literal(literal)) => ip == literal,
            _ => false,
        }
    }

    /// True when every domain `other` matches is also matched by `self`.
    pub fn covers(&self, other: &DomainPattern) -> bool {
        match (self, other) {
            (DomainPattern::Any, _) => true,
            (_, DomainPattern::Any) => false,
            (_, DomainPattern::Exact(b)) => self.matches(&MailDomain::Name(b.clone())),
            (_, DomainPattern::Literal(ip)) => self.matches(&MailDomain::Literal(*ip)),
            (DomainPattern::Subdomains(a), DomainPattern::Subdomains(b)) => b.is_within(a),
            (_, DomainPattern::Subdomains(_)) => false,
        }
    }

    /// Ordering for "most specific wins": exact names and address
    /// literals first, then the longest suffix, then `*`.
    pub fn specificity(&self) -> (u8, usize) {
        match self {
            DomainPattern::Exact(name) => (2, name.as_str().len()),
            DomainPattern::Literal(_) => (2, 0),
            DomainPattern::Subdomains(name) => (1, name.as_str().len()),
            DomainPattern::Any => (0, 0),
        }
    }
}

impl FromStr for DomainPattern {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(DomainPattern::Any);
        }
        if let Some(parent) = text.strip_prefix("*.") {
            return parent
                .parse()
                .map(DomainPattern::Subdomains)
                .map_err(|e: DomainError| e.to_string());
        }
        if text.contains('*') {
            return Err(format!(
                "invalid domain pattern {text:?}: write \"example.test\", \"*.example.test\" or \"*\""
            ));
        }
        match text.parse::<MailDomain>() {
            Ok(MailDomain::Name(name)) => Ok(DomainPattern::Exact(name)),
            Ok(MailDomain::Literal(ip)) => Ok(DomainPattern::Literal(ip)),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            DomainPattern::Exact(name) => write!(f, "{name}"),
            DomainPattern::Subdomains(name) => write!(f, "*.{name}"),
            DomainPattern::Literal(ip) => MailDomain::Literal(*ip).fmt(f),
            DomainPattern::Any => f.write_str("*"),
        }
    }
}

/// A certificate name pattern (RFC 6125 §6.4.3): a DNS name, optionally with
/// `*` as its whole left-most label. A lone `*` is refused: it would accept
/// any certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamePattern(pub DomainPattern);

impl FromStr for NamePattern {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.parse()? {
            DomainPattern::Any => Err(format!(
                "{text:?} would accept a certificate for any name: list the names, for example \"mail.example.test\" or \"*.example.test\""
            )),
            DomainPattern::Literal(_) => Err(format!(
                "{text:?} is an address literal; a certificate name is a DNS name, for example \"mail.example.test\" or \"*.example.test\""
            )),
            pattern => Ok(NamePattern(pattern)),
        }
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The host part of a `host:port`: a DNS name or an IP literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    Name(DomainName),
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Host::Name(name) => write!(f, "{name}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A next hop: `mx.example.test:25`, `192.0.2.1:587`, `[2001:db8::1]:25`,
/// or a name alone (port 25). Brackets around a name are accepted, as
/// Postfix writes them; smarthosts are never looked up by MX anyway.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: Host,
    pub port: u16,
}

impl FromStr for HostPort {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let help = || {
            format!("invalid host {text:?}: write \"name:port\", \"192.0.2.1:port\" or \"[2001:db8::1]:port\"")
        };
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(help)?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(help)?),
            };
            (inside, port)
        } else if text.matches(':').count() > 1 {
            return Err(format!("{}; put IPv6 addresses in brackets", help()));
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let port = match port {
            None => 25,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(format!("invalid port in {text:?}: use 1 to 65535")),
            },
        };
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(host.parse().map_err(|e: DomainError| e.to_string())?),
        };
        Ok(HostPort { host, port })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A socket address to listen on; the port is required.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenAddr(pub SocketAddr);

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        text.parse().map(ListenAddr).map_err(|_| {
            format!("invalid listen address {text:?}: write an IP address and port, for example \"0.0.0.0:25\" or \"[::]:25\"")
        })
    }
}

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`); a bare
/// address means that one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr(pub ipnet::IpNet);

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client reaching a dual-stack listener arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Cidr(ipnet::IpNet::from(ip)));
        }
        let net: ipnet::IpNet = text.parse().map_err(|_| {
            format!("invalid network {text:?}: write an address with a prefix length, for example \"10.0.0.0/8\" or \"2001:db8::/32\"")
        })?;
        if net.trunc() != net {
            return Err(format!(
                "network {text:?} has host bits set: did you mean \"{}\"?",
                net.trunc()
            ));
        }
        Ok(Cidr(net))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A DNS server: an IP address with an optional port (53).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nameserver(pub SocketAddr);

impl<'de> Deserialize<'de> for Nameserver {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Nameserver(SocketAddr::new(ip, 53)));
        }
        text.parse().map(Nameserver).map_err(|_| {
            de::Error::custom(format!(
                "invalid nameserver {text:?}: write an IP address, optionally with a port, for example \"127.0.0.1:5353\""
            ))
        })
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
        })
    }
}

#[cfg(test)]
#[path = "values_tests.rs"]
mod tests;
