//! Delivery's view of the ladder: one log line and one metric per step
//! that ends or changes an attempt (DESIGN.md §7: every message's fate
//! findable with one grep), and the broken-TLS memory told of every
//! failed and every working rung.

use std::net::SocketAddr;

use super::connector::Connector;
use super::ladder::{Channel, Handshake, Observer};
use super::memory::TlsMemory;
use super::policy::{AfterFailure, Deferral, Failure, Rung};
use crate::config::values::TlsLevel;
use crate::metrics::AttemptLabels;

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
}

impl AttemptLog<'_> {
    fn level(&self) -> TlsLevel {
        self.connector.level()
    }

    /// One `delivery attempt` line, and its count in
    /// `tlsrelay_delivery_attempts_total`.
    pub fn line(&self, tls: &str, channel: &Channel, result: &str) {
        let (version, cipher, outcome) = channel.labels();
        // Bounded: the configured connectors' names, `-` for the default.
        let connector = self.connector.label();
        let level = self.level();
        crate::metrics::delivery_attempt(&AttemptLabels {
            connector: connector.to_string(),
            level: level.to_string(),
            tls: version.to_string(),
            cipher: cipher.to_string(),
            outcome,
        });
        tracing::info!(
            queue_id = self.queue_id,
            recipients = %self.recipients,
            host = %self.host,
            ip = %self.addr,
            connector,
            tls_level = %level,
            tls,
            tls_memory = self.memory_note.as_str(),
            result,
            "delivery attempt"
        );
    }
}

impl Observer for AttemptLog<'_> {
    fn connect_failed(&mut self, reason: &str) {
        self.line("-", &Channel::ConnectFailed, reason);
    }

    fn upgraded(&mut self, rung: Rung, _handshake: &Handshake) {
        self.memory.succeeded(&self.addr.to_string(), rung);
    }

    fn rung_failed(&mut self, rung: Rung, failure: &Failure, next: &AfterFailure) {
        let server = self.addr.to_string();
        self.memory.failed(self.level(), &server, self.host, rung);
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
        self.line(&format!("deferred: {deferral}"), channel, "-");
    }
}
