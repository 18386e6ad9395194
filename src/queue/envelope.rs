//! The envelope of an accepted message: what SMTP said around the content,
//! kept with it in the spool (RFC 5321 §2.3.1, DSN parameters of RFC 3461).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The envelope as it is stored; field names are part of the spool format.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Reverse path; empty for the null sender `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    /// `BODY=8BITMIME` was given.
    #[serde(default)]
    pub eight_bit: bool,
    /// `SMTPUTF8` was given (RFC 6531).
    #[serde(default)]
    pub smtputf8: bool,
    /// DSN `RET=` (RFC 3461 §4.3).
    #[serde(default)]
    pub ret: Option<Ret>,
    /// DSN `ENVID=` (RFC 3461 §4.4), as xtext-decoded by the parser.
    #[serde(default)]
    pub envid: Option<String>,
    /// `REQUIRETLS` was given (RFC 8689): every hop authenticated TLS, or
    /// the message is returned. Written only when set, so a spool of
    /// unflagged mail reads the same to a release before it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requiretls: bool,
    /// Where it came from, for logs, Received and bounces.
    pub client: ClientInfo,
    /// Unix time (seconds) when the message was accepted.
    pub received_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    /// DSN `ORCPT=` (RFC 3461 §4.2), the original recipient.
    #[serde(default)]
    pub orcpt: Option<String>,
    /// DSN `NOTIFY=` (RFC 3461 §4.1); `None` when not given.
    #[serde(default)]
    pub notify: Option<Notify>,
}

/// DSN `NOTIFY=`: `NEVER`, or any of `SUCCESS`, `FAILURE`, `DELAY`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

/// The parameter's value as RFC 3461 §4.1 writes it: `NEVER`, or the
/// kinds joined by commas (`SUCCESS,FAILURE`).
impl std::fmt::Display for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<&str> = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ]
        .into_iter()
        .filter_map(|(on, word)| on.then_some(word))
        .collect();
        match kinds.is_empty() {
            true => f.write_str("NEVER"),
            false => f.write_str(&kinds.join(",")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ret {
    Full,
    Hdrs,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub ip: IpAddr,
    pub helo: String,
    /// Inbound connector name; `None` for anonymous clients.
    pub connector: Option<String>,
    /// "TLSv1.3 TLS_AES_256_GCM_SHA384" (IANA names; envelopes spooled by
    /// earlier releases say `TLS13_…`, rustls' spelling: it is only shown,
    /// never parsed), or `None` for plaintext.
    pub tls: Option<String>,
}

impl Default for ClientInfo {
    fn default() -> Self {
        ClientInfo {
            ip: IpAddr::from([0, 0, 0, 0]),
            helo: String::new(),
            connector: None,
            tls: None,
        }
    }
}
