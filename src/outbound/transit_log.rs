//! Delivery's events for the transit store (`crate::transit`, TLS-RPT and
//! `tlsrelay report`): one per session (a connection that reached a TLS
//! decision, or a host a policy ruled out before connecting), one per
//! further message on a kept connection.
//!
//! [`Sessions`] follows one address attempt through the ladder's
//! observer: each connection is a pending session; when the attempt ends
//! they are all recorded, each failed rung with the method the attempt
//! came to (how the mail went, or would have, after it), the last one
//! with the message when the mail went over it. The mapping of TLS
//! outcomes to RFC 8460 result types is here, and unit-tested.

use std::net::IpAddr;
use std::time::SystemTime;

use super::ladder::{Handshake, How};
use super::policy::{Deferral, Note, Plaintext};
use crate::config::values::{Host, TlsLevel};
use crate::tls::trust::TrustStore;
use crate::transit::{Event, Failure, Method, Policy, ResultType, Sink};

/// Who judges a session's TLS for TLS-RPT.
#[derive(Clone, Copy)]
pub enum Judge<'a> {
    /// No policy: only STARTTLS and handshake failures count.
    Nothing,
    /// An MTA-STS policy (enforce or testing): the certificate must chain
    /// to these anchors and name the host.
    Sts(&'a TrustStore),
    /// DANE: its deferrals say what failed.
    Dane,
}

/// One connection of the attempt.
#[derive(Default)]
struct Pending {
    starttls: bool,
    tls_version: Option<String>,
    failure: Option<Failure>,
    deferred: bool,
}

/// The sessions of one address attempt.
pub struct Sessions<'a> {
    pub domain: String,
    pub host: Host,
    pub ip: Option<IpAddr>,
    pub policy: Policy,
    pub judge: Judge<'a>,
    /// A failure every session carries (the policy could not be fetched;
    /// DANE records all unusable).
    pub standing: Option<Failure>,
    /// Mail with `TLS-Required: No` is not counted at all.
    pub silent: bool,
    /// The message is flagged REQUIRETLS: its delivery is counted so.
    pub requiretls: bool,
    pending: Vec<Pending>,
}

impl<'a> Sessions<'a> {
    pub fn new(domain: String, host: Host, ip: Option<IpAddr>, policy: Policy) -> Self {
        Sessions {
            domain,
            host,
            ip,
            policy,
            judge: Judge::Nothing,
            standing: None,
            silent: false,
            requiretls: false,
            pending: Vec::new(),
        }
    }

    /// A connection answered EHLO.
    pub fn greeted(&mut self, starttls: bool) {
        self.pending.push(Pending {
            starttls,
            failure: self.standing.clone(),
            ..Pending::default()
        });
    }

    /// Its handshake completed; under MTA-STS the certificate is judged.
    pub fn upgraded(&mut self, handshake: &Handshake) {
        let judged = match self.judge {
            Judge::Sts(trust) => super::sts::judge(trust, &handshake.chain, &self.host).err(),
            Judge::Nothing | Judge::Dane => None,
        };
        if let Some(session) = self.pending.last_mut() {
            session.tls_version = Some(tls_version(&handshake.negotiated.version));
            if session.failure.is_none() {
                session.failure = judged;
            }
        }
    }

    /// TLS failed on it.
    pub fn tls_failed(&mut self, what: String) {
        if let Some(session) = self.pending.last_mut() {
            session.failure.get_or_insert(Failure {
                result_type: ResultType::ValidationFailure,
                detail: what,
            });
        }
    }

    /// The policy deferred on it.
    pub fn deferred(&mut self, deferral: &Deferral) {
        if let Some(session) = self.pending.last_mut() {
            session.deferred = true;
            let failure = Failure {
                result_type: deferral_type(deferral, session.starttls),
                detail: deferral.to_string(),
            };
            // A policy's own verdict says more than a standing failure.
            if session.failure.is_none() || session.failure == self.standing {
                session.failure = Some(failure);
            }
        }
    }

    /// Records every session: `how` the attempt ended (`None`: deferred or
    /// unreachable), `delivered` whether its message went.
    pub fn finish(
        &mut self,
        sink: &dyn Sink,
        how: Option<&How>,
        level: TlsLevel,
        sending_ip: Option<IpAddr>,
        delivered: bool,
    ) {
        if self.silent {
            return;
        }
        let sts = matches!(self.judge, Judge::Sts(_)) && level == TlsLevel::VerifyHost;
        let method = how.map_or(Method::Deferred, |how| method(how, level, sts));
        if let (Some(How::Plaintext(Plaintext::NotOffered)), Some(last)) =
            (how, self.pending.last_mut())
        {
            last.failure.get_or_insert(Failure {
                result_type: ResultType::StarttlsNotSupported,
                detail: "STARTTLS not offered".into(),
            });
        }
        let count = self.pending.len();
        for (i, session) in std::mem::take(&mut self.pending).into_iter().enumerate() {
            let last = i + 1 == count;
            let method = match session.deferred {
                true => Method::Deferred,
                false => method,
            };
            let event = self.event(method, session.tls_version, session.failure, 1);
            let message = last && delivered;
            sink.record(Event {
                sending_ip,
                messages: u32::from(message),
                requiretls_delivered: u32::from(message && self.requiretls),
                policy_deferred: session.deferred,
                ..event
            });
        }
    }

    /// Whether the attempt failed the policy it is judged by: mail in
    /// plaintext, or a session with a failure (MTA-STS `testing`).
    pub fn failed(&self, how: &How) -> bool {
        matches!(how, How::Plaintext(_)) || self.pending.iter().any(|s| s.failure.is_some())
    }

    /// A host the policy ruled out before any connection: one session,
    /// deferred, with why.
    pub fn ruled_out(self, sink: &dyn Sink, deferral: &Deferral) {
        if self.silent {
            return;
        }
        let failure = Failure {
            result_type: deferral_type(deferral, true),
            detail: deferral.to_string(),
        };
        let event = self.event(Method::Deferred, None, Some(failure), 1);
        sink.record(Event {
            policy_deferred: true,
            ..event
        });
    }

    /// A further message delivered over a kept connection.
    pub fn reused(self, sink: &dyn Sink, method: Method, tls_version: Option<String>) {
        if !self.silent {
            let event = self.event(method, tls_version, None, 0);
            sink.record(Event {
                messages: 1,
                requiretls_delivered: u32::from(self.requiretls),
                ..event
            });
        }
    }

    fn event(
        &self,
        method: Method,
        tls_version: Option<String>,
        failure: Option<Failure>,
        sessions: u32,
    ) -> Event {
        Event {
            at: SystemTime::now(),
            domain: self.domain.clone(),
            policy: self.policy.clone(),
            mx_host: self.host.to_string(),
            receiving_ip: self.ip,
            sending_ip: None,
            method,
            tls_version,
            failure,
            sessions,
            messages: 0,
            policy_deferred: false,
            requiretls_delivered: 0,
            requiretls_returned: 0,
        }
    }
}

/// A message flagged REQUIRETLS returned (5.7.30) because no hop for
/// `domain` met the requirement: counted for `tlsrelay report`, with no
/// session (nothing for TLS-RPT).
pub fn requiretls_returned(sink: &dyn Sink, domain: &str) {
    sink.record(Event::returned_for_requiretls(SystemTime::now(), domain));
}

/// `TLSv1.3` → `1.3`.
pub fn tls_version(negotiated: &str) -> String {
    negotiated.trim_start_matches("TLSv").to_string()
}

/// How the mail went over a ready connection (`transit::Method`), the
/// ladder having climbed as `level`; `sts`: under MTA-STS `enforce`.
pub fn method(how: &How, level: TlsLevel, sts: bool) -> Method {
    match how {
        How::Plaintext(why) if why.is_fallback() => Method::PlaintextAfterFailure,
        How::Plaintext(_) => Method::Plaintext,
        How::Tls { note, negotiated } => match (note, level) {
            (Note::DaneVerified { .. }, _) => Method::Dane,
            (Note::Verified, _) if sts => Method::MtaSts,
            (Note::Verified | Note::VerifiedChain | Note::Pinned, l) if forced(l) => {
                Method::Connector
            }
            _ if negotiated.version == "TLSv1.2" => Method::Tls12Unverified,
            _ => Method::Tls13Unverified,
        },
    }
}

fn forced(level: TlsLevel) -> bool {
    matches!(
        level,
        TlsLevel::VerifyCa | TlsLevel::VerifyHost | TlsLevel::VerifyDomain | TlsLevel::Pinned
    )
}

/// The RFC 8460 result type of a policy's deferral; `starttls`: whether
/// the server offered STARTTLS.
pub fn deferral_type(deferral: &Deferral, starttls: bool) -> ResultType {
    if !starttls {
        return ResultType::StarttlsNotSupported;
    }
    match deferral {
        Deferral::MtaSts(inner) | Deferral::RequireTls(inner) => deferral_type(inner, starttls),
        Deferral::NoStartTls => ResultType::StarttlsNotSupported,
        Deferral::NameMismatch(_) => ResultType::CertificateHostMismatch,
        Deferral::Untrusted(why) if why.contains("expired") || why.contains("not yet valid") => {
            ResultType::CertificateExpired
        }
        Deferral::Untrusted(_) => ResultType::CertificateNotTrusted,
        Deferral::DaneHostUnusable(_) | Deferral::DaneMxBogus(_) | Deferral::DaneMxFailed(_) => {
            ResultType::DnssecInvalid
        }
        Deferral::DaneRequired(_) => ResultType::DaneRequired,
        Deferral::MtaStsMxMismatch(_) => ResultType::ValidationFailure,
        Deferral::DaneFailed(_)
        | Deferral::TlsFailed(_)
        | Deferral::FallbackOff(_)
        | Deferral::ClientCertWanted(_)
        | Deferral::NotPinned
        | Deferral::RequireTlsMx(_)
        | Deferral::RequireTlsUnverified(_)
        | Deferral::RequireTlsNotOffered(_) => ResultType::ValidationFailure,
    }
}

#[cfg(test)]
#[path = "transit_log_tests.rs"]
mod tests;
