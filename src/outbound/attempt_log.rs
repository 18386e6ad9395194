//! Delivery's view of the ladder: one log line and one metric per step
//! that ends or changes an attempt (DESIGN.md §7: every message's fate
//! findable with one grep), and the broken-TLS memory told of every
//! failed and every working rung. Each line carries `dane=WORD` (and
//! `usage=N` when a TLSA record of usage N authenticated the server), the
//! metric a `dane` label with the same word; and `sts=WORD` (MTA-STS:
//! `-`, `none`, `enforced`, `failed`, `mx-mismatch`, `testing`,
//! `testing-failed`, `fetch-error`, `invalid`); and `requiretls=WORD`
//! (`-`, `required`, `off`, `lifted`: see `super::requiretls`). It also follows the
//! attempt's sessions for the transit store (`super::transit_log`).

use std::net::SocketAddr;

use super::client::Capabilities;
use super::connector::Connector;
use super::ladder::{Channel, Handshake, Observer};
use super::memory::TlsMemory;
use super::policy::{AfterFailure, Deferral, Failure, Rung};
use super::transit_log::Sessions;
use crate::config::values::TlsLevel;
use crate::metrics::AttemptLabels;
use crate::tls::client::Presented;

/// The attempt to one server address, as the log names it.
pub struct AttemptLog<'a> {
    pub queue_id: &'a str,
    /// The recipients, comma-separated.
    pub recipients: String,
    pub host: &'a str,
    pub addr: SocketAddr,
    pub connector: &'a Connector,
    /// What the broken-TLS memory decided, once it was asked; `-` before.
    pub memory_note: String,
    pub memory: &'a TlsMemory,
    /// The level the ladder climbs under (`dane` where DANE governs): what
    /// the broken-TLS memory is told.
    pub level: TlsLevel,
    /// The `dane=` word, and the usage of the record that authenticated.
    pub dane: &'static str,
    pub usage: Option<u8>,
    /// The `sts=` word (MTA-STS, see `super::sts`).
    pub sts: &'static str,
    /// The `requiretls=` word (`super::requiretls::Demand::word`).
    pub requiretls: &'static str,
    /// The attempt's sessions, for the transit store.
    pub sessions: Sessions<'a>,
}

impl AttemptLog<'_> {
    /// One `delivery attempt` line, and its count in
    /// `tlsrelay_delivery_attempts_total`.
    pub fn line(&self, tls: &str, channel: &Channel, result: &str) {
        let usage = self.usage.map_or("-".to_string(), |u| u.to_string());
        let line = Line {
            queue_id: self.queue_id,
            recipients: &self.recipients,
            host: self.host,
            ip: &self.addr.to_string(),
            connector: self.connector,
            tls_memory: &self.memory_note,
            dane: self.dane,
            usage: &usage,
            sts: self.sts,
            requiretls: self.requiretls,
        };
        line.write(tls, channel, result);
    }
}

/// The fields of one `delivery attempt` line.
pub struct Line<'a> {
    pub queue_id: &'a str,
    pub recipients: &'a str,
    pub host: &'a str,
    /// The address connected to, `-` when DANE ruled the host out first.
    pub ip: &'a str,
    pub connector: &'a Connector,
    pub tls_memory: &'a str,
    pub dane: &'static str,
    pub usage: &'a str,
    pub sts: &'a str,
    pub requiretls: &'static str,
}

impl Line<'_> {
    pub fn write(&self, tls: &str, channel: &Channel, result: &str) {
        let (version, cipher, outcome) = channel.labels();
        // Bounded: the configured connectors' names, `-` for the default.
        let connector = self.connector.label();
        let level = self.connector.level();
        crate::metrics::delivery_attempt(&AttemptLabels {
            connector: connector.to_string(),
            level: level.to_string(),
            tls: version.to_string(),
            cipher: cipher.to_string(),
            outcome,
            dane: self.dane,
        });
        tracing::info!(
            queue_id = self.queue_id,
            recipients = %self.recipients,
            host = %self.host,
            ip = %self.ip,
            connector,
            tls_level = %level,
            tls,
            tls_memory = self.tls_memory,
            dane = %self.dane,
            usage = %self.usage,
            sts = %self.sts,
            requiretls = self.requiretls,
            result,
            "delivery attempt"
        );
    }

    /// DANE ruled the host (or the whole domain) out before any connection.
    pub fn refused(&self, deferral: &Deferral) {
        self.write(
            &format!("deferred: {deferral}"),
            &Channel::DeferredForPolicy,
            "-",
        );
    }
}

impl Observer for AttemptLog<'_> {
    fn connect_failed(&mut self, reason: &str) {
        self.line("-", &Channel::ConnectFailed, reason);
    }

    fn greeted(&mut self, _rung: Rung, capabilities: &Capabilities) {
        self.sessions.greeted(capabilities.starttls);
    }

    fn dane_checked(&mut self, _records: &[crate::tls::dane::Tlsa], presented: &Presented) {
        if let Ok(authenticated) = &presented.result {
            self.usage = Some(authenticated.record.usage);
        }
    }

    fn upgraded(&mut self, rung: Rung, handshake: &Handshake) {
        self.sessions.upgraded(handshake);
        self.memory.succeeded(&self.addr.to_string(), rung);
    }

    fn rung_failed(&mut self, rung: Rung, failure: &Failure, next: &AfterFailure) {
        self.sessions.tls_failed(failure.to_string());
        let server = self.addr.to_string();
        self.memory.failed(self.level, &server, self.host, rung);
        if let AfterFailure::NextRung(_) = next {
            let channel = match failure {
                Failure::RefusedAfterTls(_) => Channel::RefusedAfterTls,
                Failure::Handshake(_) => Channel::RungFailed,
            };
            let tls = format!("TLS failed on rung {rung:?} ({failure}), trying lower");
            self.line(&tls, &channel, "-");
        }
    }

    fn deferred(&mut self, deferral: &Deferral, channel: &Channel) {
        if let Some(word) = deferral.dane_word() {
            self.dane = word;
        }
        if let Some(word) = deferral.sts_word() {
            self.sts = word;
        }
        self.sessions.deferred(deferral);
        self.line(&format!("deferred: {deferral}"), channel, "-");
    }
}
