//! REQUIRETLS in delivery (RFC 8689, DESIGN.md §5b): what one message asks
//! of its next hops, as pure functions the delivery loop consults.
//!
//! A message flagged `REQUIRETLS` at MAIL goes only to a hop that is
//! authenticated (a connector smarthost, an MX host from a DNSSEC-secure
//! answer, or one an MTA-STS `enforce` policy names), over TLS whose
//! certificate is verified (DANE, MTA-STS, or `verify-host`,
//! `verify-domain`, `pinned`; a weaker connector level is raised to
//! `verify-host` for it), to a server that offers `REQUIRETLS`, which is
//! passed on. A hop that fails any of these hears nothing of the message;
//! when every hop failed so, the message is returned with 5.7.30 (§4.2.1).
//! A connector with `requiretls = "off"` ignores the flag (Postfix's
//! `smtp_requiretls_policy`), still passing it on where offered.
//!
//! An unflagged message whose header says `TLS-Required: No` (§4.3) asks
//! the opposite: recipient-side policies (DANE, MTA-STS) are not applied
//! to it; TLS is still tried first, and a connector's own forced level,
//! the relay operator's contract, still holds.

use super::connector::Connector;
use super::ladder::How;
use super::policy::{Deferral, Note};
use super::route::Hop;
use crate::config::values::{RequireTlsPolicy, TlsLevel};
use crate::outbound::dane::Status;
use crate::queue::envelope::Envelope;

/// What one message asks of the hops of one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Demand {
    /// Neither flag nor header: the policies in force decide.
    Usual,
    /// Flagged, and the connector enforces it.
    Required,
    /// Flagged, and the connector has `requiretls = "off"`.
    Off,
    /// `TLS-Required: No` (and not flagged): DANE and MTA-STS lifted.
    Lifted,
}

impl Demand {
    /// The demand of a message (`envelope`, the start of its content:
    /// its header section) through `connector`.
    pub fn of(envelope: &Envelope, head: &[u8], connector: &Connector) -> Demand {
        match (envelope.requiretls, connector.settings.requiretls) {
            (true, RequireTlsPolicy::Enforce) => Demand::Required,
            (true, RequireTlsPolicy::Off) => Demand::Off,
            // RFC 8689 §4.1: with the parameter, the header is ignored.
            (false, _) if tls_required_no(head) => Demand::Lifted,
            (false, _) => Demand::Usual,
        }
    }

    /// The attempt log's `requiretls=` word.
    pub fn word(self) -> &'static str {
        match self {
            Demand::Usual => "-",
            Demand::Required => "required",
            Demand::Off => "off",
            Demand::Lifted => "lifted",
        }
    }

    pub fn required(self) -> bool {
        self == Demand::Required
    }

    /// Whether DANE and MTA-STS apply to this message.
    pub fn policies_apply(self) -> bool {
        self != Demand::Lifted
    }
}

/// Whether `level` itself authenticates the server: a verified name or a
/// pinned key. Below it a flagged message climbs as `verify-host`.
pub fn level_authenticates(level: TlsLevel) -> bool {
    matches!(
        level,
        TlsLevel::VerifyHost | TlsLevel::VerifyDomain | TlsLevel::Pinned | TlsLevel::Dane
    )
}

/// Whether the relay knows `hop` to be the right next hop (§4.2.1 step
/// 1): a connector's smarthost, an MX host from a DNSSEC-secure answer,
/// or one an MTA-STS policy in `enforce` mode names (`sts_enforced`: the
/// policy is enforced and did not rule the host out).
pub fn hop_authenticated(hop: &Hop, smarthost: bool, sts_enforced: bool) -> bool {
    smarthost || hop.mx == Status::Secure || sts_enforced
}

/// Whether the ready connection's certificate was verified (§4.2.1 step
/// 2): a name or pin the level checked, or DANE's TLSA records.
pub fn verified(how: &How) -> bool {
    matches!(
        how,
        How::Tls {
            note: Note::Verified | Note::Pinned | Note::DaneVerified { .. },
            ..
        }
    )
}

/// What a flagged message's hop lacks once the ladder made it ready
/// (§4.2.1 steps 2 and 3): a verified certificate, then the server's
/// `REQUIRETLS`; `None` when it may have the message. `required`: the
/// ladder climbed for a flagged message whose connector enforces it.
pub fn unmet(required: bool, how: &How, offered: bool, host: &str) -> Option<Deferral> {
    if !required {
        return None;
    }
    if !verified(how) {
        return Some(Deferral::RequireTlsUnverified(how.summary()));
    }
    match offered {
        true => None,
        false => Some(Deferral::RequireTlsNotOffered(host.to_string())),
    }
}

/// How the hops of one destination fared for a flagged message, as
/// delivery and `probe` count them: refused for REQUIRETLS, or skipped
/// for another reason (unreachable, no address, DANE host unusable).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    refused: usize,
    transient: bool,
}

impl Tally {
    /// A hop skipped: `for_requiretls` when it failed what REQUIRETLS asks.
    pub fn skipped(&mut self, for_requiretls: bool) {
        match for_requiretls {
            true => self.refused += 1,
            false => self.transient = true,
        }
    }

    /// Whether the message is returned now (RFC 8689 §4.2.1): hops were
    /// refused for REQUIRETLS and none was merely unreachable, in which
    /// case it waits for the next attempt instead.
    pub fn returns(&self) -> bool {
        self.refused > 0 && !self.transient
    }
}

/// The reason a flagged message for `domain` is returned, after `why`.
pub fn returned_reason(domain: &str, why: &str) -> String {
    format!("REQUIRETLS: no next hop for {domain} met the requirement (RFC 8689): {why}")
}

/// How much of a message's start is read for its header section: a
/// `TLS-Required:` field further in is not seen, and the policies apply
/// (the safe side).
pub const HEAD_LIMIT: usize = 64 * 1024;

/// Whether the message's header says `TLS-Required: No` (RFC 8689 §5):
/// the sender asks that TLS policy failures not stop it. Only the header
/// section is read, and the value compared without case.
pub fn tls_required_no(content: &[u8]) -> bool {
    let end = memchr::memmem::find(content, b"\r\n\r\n").unwrap_or(content.len());
    content[..end].split(|&b| b == b'\n').any(|line| {
        let line = String::from_utf8_lossy(line);
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("TLS-Required")
                && value.trim().eq_ignore_ascii_case("no")
        })
    })
}

#[cfg(test)]
#[path = "requiretls_tests.rs"]
mod tests;
