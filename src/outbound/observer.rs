//! What the ladder tells its observer ([`Observer`]): each step as it
//! happens, what a completed handshake showed ([`Handshake`]), and what an
//! attempt's TLS came to ([`Channel`]). Delivery's observer is
//! `super::attempt_log`, probe's `super::probe_steps`.

use rustls::pki_types::CertificateDer;

use super::client::Capabilities;
use super::policy::{AfterFailure, Checks, Deferral, Failure, Rung};
use crate::tls::client::{Negotiated, Presented};
use crate::tls::dane::Tlsa;

/// What an attempt's TLS came to, as the metrics count it
/// (`tlsrelay_delivery_attempts_total`).
#[derive(Clone, Debug)]
pub enum Channel {
    Tls {
        version: String,
        cipher: String,
    },
    /// STARTTLS not offered, or `tls = "none"`.
    Plaintext,
    /// Opportunistic: TLS failed on every rung, the mail went in plaintext.
    Fallback,
    DeferredForPolicy,
    RungFailed,
    ConnectFailed,
    /// TLS worked, then the server refused EHLO (a missing client certificate).
    RefusedAfterTls,
}

impl Channel {
    /// The `tls`, `cipher` and `outcome` labels.
    pub fn labels(&self) -> (&str, &str, &'static str) {
        match self {
            Channel::Tls { version, cipher } => (version, cipher, "sent"),
            Channel::Plaintext => ("plaintext", "-", "sent"),
            Channel::Fallback => ("plaintext_fallback", "-", "sent"),
            Channel::DeferredForPolicy => ("-", "-", "deferred_for_policy"),
            Channel::RungFailed => ("-", "-", "tls_rung_failed"),
            Channel::ConnectFailed => ("-", "-", "connect_failed"),
            Channel::RefusedAfterTls => ("-", "-", "refused_after_tls"),
        }
    }
}

/// What a completed handshake showed.
#[derive(Clone, Debug)]
pub struct Handshake {
    pub negotiated: Negotiated,
    /// The server's certificates, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    pub checks: Checks,
    /// Under DANE with usable records: the usage of the record that
    /// authenticated the server, or why none did.
    pub dane: Option<Result<u8, String>>,
}

/// Each step of the ladder, as it happens. Every method does nothing
/// unless the observer wants it.
pub trait Observer {
    /// TCP connect, greeting or EHLO failed.
    fn connect_failed(&mut self, _reason: &str) {}
    /// A connection for `rung` answered EHLO with `capabilities`.
    fn greeted(&mut self, _rung: Rung, _capabilities: &Capabilities) {}
    /// The handshake of `rung` completed and EHLO over TLS was answered.
    fn upgraded(&mut self, _rung: Rung, _handshake: &Handshake) {}
    /// TLS failed on `rung`; the policy said `next`.
    fn rung_failed(&mut self, _rung: Rung, _failure: &Failure, _next: &AfterFailure) {}
    /// The policy deferred; `channel` is the attempt's outcome label.
    fn deferred(&mut self, _deferral: &Deferral, _channel: &Channel) {}
    /// Under DANE, the server presented a chain and the TLSA `records`
    /// judged it (whether the handshake then went on or not).
    fn dane_checked(&mut self, _records: &[Tlsa], _presented: &Presented) {}
}
