//! Enhanced mail system status codes (RFC 3463): the `4.7.5` that follows
//! a reply code, a DSN's `Status:` field, a recipient's fate in the queue.
//!
//! [`EnhancedStatus`] is parsed once, from text or from a reply, and is
//! then a value: it cannot hold `4.7` or `6.0.0`, it turns temporary into
//! permanent without string surgery ([`EnhancedStatus::made_permanent`]),
//! and it writes itself as the same text (`Display`, and serde as a
//! string) wherever it goes: on the wire, in queue state, in a DSN.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The first digit (RFC 3463 §3.1): how the attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// `2.x.x`: done.
    Success,
    /// `4.x.x`: failed for now; the same attempt may succeed later.
    Transient,
    /// `5.x.x`: failed for good.
    Permanent,
}

impl Class {
    const fn digit(self) -> u8 {
        match self {
            Class::Success => 2,
            Class::Transient => 4,
            Class::Permanent => 5,
        }
    }
}

/// `class.subject.detail`, each part as RFC 3463 §2 allows it: class 2, 4
/// or 5; subject and detail one to three digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnhancedStatus {
    class: Class,
    subject: u16,
    detail: u16,
}

/// The largest subject or detail: three digits (RFC 3463 §2).
const MAX_PART: u16 = 999;

impl EnhancedStatus {
    /// The status `class.subject.detail`; `None` when subject or detail has
    /// more than three digits.
    pub const fn new(class: Class, subject: u16, detail: u16) -> Option<EnhancedStatus> {
        if subject > MAX_PART || detail > MAX_PART {
            return None;
        }
        Some(EnhancedStatus {
            class,
            subject,
            detail,
        })
    }

    /// From the three numbers of a parsed reply (`smtp_proto` gives
    /// `[4, 7, 5]`); `None` for a class other than 2, 4 or 5.
    pub fn from_parts([class, subject, detail]: [u8; 3]) -> Option<EnhancedStatus> {
        let class = match class {
            2 => Class::Success,
            4 => Class::Transient,
            5 => Class::Permanent,
            _ => return None,
        };
        EnhancedStatus::new(class, subject.into(), detail.into())
    }

    pub fn class(self) -> Class {
        self.class
    }

    pub fn subject(self) -> u16 {
        self.subject
    }

    pub fn detail(self) -> u16 {
        self.detail
    }

    /// The same status as a permanent failure, for a message that will
    /// not be tried again (`4.4.1` → `5.4.1`, RFC 3463 §3.1: the subject
    /// and detail say what went wrong, the class only whether to retry).
    /// A success or permanent status is returned as it is.
    pub fn made_permanent(self) -> EnhancedStatus {
        match self.class {
            Class::Transient => EnhancedStatus {
                class: Class::Permanent,
                ..self
            },
            _ => self,
        }
    }
}

/// A status written into the program; out of range is a build error
/// where it initialises a `const`.
const fn known(class: Class, subject: u16, detail: u16) -> EnhancedStatus {
    match EnhancedStatus::new(class, subject, detail) {
        Some(status) => status,
        None => panic!("an enhanced status part has more than three digits"),
    }
}

/// The statuses the relay gives of its own accord (RFC 3463 §3, RFC 7505,
/// RFC 6531), by meaning.
impl EnhancedStatus {
    /// `4.0.0`: a temporary failure with nothing more specific to say.
    pub const TRANSIENT: Self = known(Class::Transient, 0, 0);
    /// `5.0.0`: a permanent failure with nothing more specific to say.
    pub const PERMANENT: Self = known(Class::Permanent, 0, 0);
    /// `5.1.1`: bad destination mailbox address.
    pub const BAD_MAILBOX: Self = known(Class::Permanent, 1, 1);
    /// `5.1.2`: bad destination system address (no such domain).
    pub const BAD_SYSTEM: Self = known(Class::Permanent, 1, 2);
    /// `5.1.10`: the domain accepts no mail (null MX, RFC 7505).
    pub const NULL_MX: Self = known(Class::Permanent, 1, 10);
    /// `4.2.2`: mailbox full.
    pub const MAILBOX_FULL: Self = known(Class::Transient, 2, 2);
    /// `5.3.4`: message too big for the system.
    pub const TOO_BIG: Self = known(Class::Permanent, 3, 4);
    /// `4.4.1`: no answer from host.
    pub const NO_ANSWER: Self = known(Class::Transient, 4, 1);
    /// `4.4.2`: bad connection.
    pub const BAD_CONNECTION: Self = known(Class::Transient, 4, 2);
    /// `4.4.4`: unable to route, for now (a host without an address).
    pub const UNROUTABLE: Self = known(Class::Transient, 4, 4);
    /// `4.4.7`: delivery time expired (`max_age`; made permanent in the DSN).
    pub const EXPIRED: Self = known(Class::Transient, 4, 7);
    /// `4.4.3`: directory (DNS) server failure.
    pub const DNS_FAILURE: Self = known(Class::Transient, 4, 3);
    /// `5.4.4`: unable to route.
    pub const NO_ROUTE: Self = known(Class::Permanent, 4, 4);
    /// `4.5.0`: other or undefined protocol status.
    pub const PROTOCOL: Self = known(Class::Transient, 5, 0);
    /// `5.6.7`: non-ASCII addresses not permitted for that recipient
    /// (RFC 6531: the next hop lacks SMTPUTF8).
    pub const NO_SMTPUTF8: Self = known(Class::Permanent, 6, 7);
    /// `4.7.0`: other or undefined security status.
    pub const SECURITY: Self = known(Class::Transient, 7, 0);
    /// `4.7.1`: delivery not authorized (here: a client certificate wanted).
    pub const NOT_AUTHORIZED: Self = known(Class::Transient, 7, 1);
    /// `4.7.4`: security features not supported (no STARTTLS).
    pub const NO_SECURITY_FEATURES: Self = known(Class::Transient, 7, 4);
    /// `4.7.5`: cryptographic failure.
    pub const CRYPTO_FAILURE: Self = known(Class::Transient, 7, 5);
    /// RFC 8689 §6: "REQUIRETLS support required": a flagged message found
    /// no authenticated hop that offers REQUIRETLS, and is returned.
    pub const REQUIRETLS_NEEDED: Self = known(Class::Permanent, 7, 30);
}

/// For stored records written before statuses were checked: a status
/// that does not parse reads as none instead of making the whole record
/// unreadable (`#[serde(deserialize_with = …)]`).
pub fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EnhancedStatus>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(text.and_then(|t| t.parse().ok()))
}

/// Why a text is not an enhanced status code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an enhanced status code (RFC 3463: 2, 4 or 5, then two numbers of one to three digits, such as \"4.7.5\")")]
pub struct StatusError {
    text: String,
}

impl FromStr for EnhancedStatus {
    type Err = StatusError;

    /// Exactly `class "." subject "." detail` (RFC 3463 §2): no blanks,
    /// no sign, no fourth part. Leading zeros are digits the grammar
    /// allows (`4.07.5` is `4.7.5`).
    fn from_str(text: &str) -> Result<Self, StatusError> {
        let error = || StatusError {
            text: text.chars().take(32).collect(),
        };
        let number = |part: &str| match part.len() {
            1..=3 if part.bytes().all(|b| b.is_ascii_digit()) => part.parse::<u16>().ok(),
            _ => None,
        };
        let mut parts = text.split('.');
        let (Some(class), Some(subject), Some(detail), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(error());
        };
        let class = match class {
            "2" => Class::Success,
            "4" => Class::Transient,
            "5" => Class::Permanent,
            _ => return Err(error()),
        };
        let (Some(subject), Some(detail)) = (number(subject), number(detail)) else {
            return Err(error());
        };
        EnhancedStatus::new(class, subject, detail).ok_or_else(error)
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class.digit(), self.subject, self.detail)
    }
}

/// As its text, `"4.7.5"`, so queue state and admin output read as
/// before and stay readable by hand.
impl Serialize for EnhancedStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EnhancedStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {

    /// The named statuses say what their names promise, as text.
    #[test]
    fn named_statuses_are_the_rfc_codes() {
        for (status, text) in [
            (EnhancedStatus::TRANSIENT, "4.0.0"),
            (EnhancedStatus::PERMANENT, "5.0.0"),
            (EnhancedStatus::BAD_MAILBOX, "5.1.1"),
            (EnhancedStatus::BAD_SYSTEM, "5.1.2"),
            (EnhancedStatus::NULL_MX, "5.1.10"),
            (EnhancedStatus::MAILBOX_FULL, "4.2.2"),
            (EnhancedStatus::TOO_BIG, "5.3.4"),
            (EnhancedStatus::NO_ANSWER, "4.4.1"),
            (EnhancedStatus::BAD_CONNECTION, "4.4.2"),
            (EnhancedStatus::DNS_FAILURE, "4.4.3"),
            (EnhancedStatus::UNROUTABLE, "4.4.4"),
            (EnhancedStatus::EXPIRED, "4.4.7"),
            (EnhancedStatus::NO_ROUTE, "5.4.4"),
            (EnhancedStatus::PROTOCOL, "4.5.0"),
            (EnhancedStatus::NO_SMTPUTF8, "5.6.7"),
            (EnhancedStatus::SECURITY, "4.7.0"),
            (EnhancedStatus::NOT_AUTHORIZED, "4.7.1"),
            (EnhancedStatus::NO_SECURITY_FEATURES, "4.7.4"),
            (EnhancedStatus::CRYPTO_FAILURE, "4.7.5"),
        ] {
            assert_eq!(status.to_string(), text);
            assert_eq!(text.parse::<EnhancedStatus>(), Ok(status));
        }
    }
    use super::*;

    fn status(text: &str) -> EnhancedStatus {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_and_displays_the_same_text() {
        for text in ["2.0.0", "4.7.5", "5.1.1", "5.7.26", "4.999.999", "5.0.10"] {
            assert_eq!(status(text).to_string(), text);
        }
        let parsed = status("4.7.5");
        assert_eq!(
            (parsed.class(), parsed.subject(), parsed.detail()),
            (Class::Transient, 7, 5)
        );
        // The grammar's 1*3digit allows leading zeros; the value is the same.
        assert_eq!(status("4.07.005"), status("4.7.5"));
    }

    #[test]
    fn refuses_what_rfc_3463_does_not_allow() {
        for text in [
            "",
            "4",
            "4.7",
            "4.7.",
            ".7.5",
            "4..5",
            "4.7.5.1",
            "3.0.0",
            "1.0.0",
            "6.0.0",
            "0.0.0",
            "45.7.5",
            "4.1000.0",
            "4.0.1000",
            "4.7.5 ",
            " 4.7.5",
            "4.+7.5",
            "4.-7.5",
            "4.7.x",
            "x.7.5",
            "4,7,5",
            "4.7.5\r\n",
            "٤.7.5",
            "4.٧.5",
        ] {
            assert!(text.parse::<EnhancedStatus>().is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn the_error_quotes_a_bounded_text() {
        let long = "9".repeat(10_000);
        let message = long
            .parse::<EnhancedStatus>()
            .map_or_else(|e| e.to_string(), |s| s.to_string());
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("RFC 3463"), "{message}");
    }

    #[test]
    fn made_permanent_changes_only_a_temporary_class() {
        assert_eq!(status("4.4.1").made_permanent(), status("5.4.1"));
        assert_eq!(status("4.7.26").made_permanent(), status("5.7.26"));
        assert_eq!(status("5.1.1").made_permanent(), status("5.1.1"));
        assert_eq!(status("2.0.0").made_permanent(), status("2.0.0"));
    }

    #[test]
    fn from_reply_parts() {
        assert_eq!(EnhancedStatus::from_parts([4, 7, 5]), Some(status("4.7.5")));
        assert_eq!(
            EnhancedStatus::from_parts([5, 255, 255]),
            Some(status("5.255.255"))
        );
        assert_eq!(EnhancedStatus::from_parts([3, 0, 0]), None);
        assert_eq!(EnhancedStatus::from_parts([0, 0, 0]), None);
        assert_eq!(EnhancedStatus::new(Class::Permanent, 1000, 0), None);
    }

    #[test]
    fn serde_is_the_text() {
        let json = serde_json::to_string(&status("4.7.5")).unwrap_or_default();
        assert_eq!(json, "\"4.7.5\"");
        let back: EnhancedStatus = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, status("4.7.5"));
        let list: Vec<EnhancedStatus> =
            serde_json::from_str("[\"2.0.0\", \"5.7.1\"]").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list, [status("2.0.0"), status("5.7.1")]);
        for bad in ["\"4.7\"", "\"6.0.0\"", "475", "null"] {
            assert!(
                serde_json::from_str::<EnhancedStatus>(bad).is_err(),
                "{bad} accepted"
            );
        }
    }
}
