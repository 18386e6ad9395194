//! What a reload replaces in the one [`super::deliver::Deliverer`]:
//! routing, connectors and their trust, TLS material, timeouts, DANE.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::connector::{Connector, Connectors};
use super::dane::{self, Mandatory};
use super::ladder::Ladder;
use super::route::{Hop, Resolve};
use crate::config::domain::MailDomain;
use crate::config::Config;
use crate::tls::certs::Identity;

/// What a reload replaces: routing, TLS material, timeouts.
pub struct Settings<R> {
    pub hostname: String,
    pub connectors: Connectors,
    pub mx_port: u16,
    pub connect_timeout: Duration,
    /// `[delivery] opportunistic_fallback`.
    pub fallback: bool,
    /// `[delivery] dane`.
    pub dane: bool,
    pub resolver: R,
    pub(super) identity: Option<Arc<Identity>>,
    /// Multiplies the SMTP phase timeouts (tests shorten them).
    pub timeout_scale: f64,
    /// `[delivery] max_connections_per_destination`, per host and port.
    pub(super) per_destination: usize,
}

impl<R> Settings<R> {
    /// From a loaded configuration; reads every connector's `ca_file`.
    pub fn new(
        config: &Config,
        resolver: R,
        identity: Option<Arc<Identity>>,
    ) -> Result<Self, String> {
        Ok(Settings {
            hostname: config.server.hostname.to_string(),
            connectors: Connectors::new(&config.outbound)?,
            mx_port: config.delivery.mx_port,
            connect_timeout: config.delivery.connect_timeout.0,
            fallback: config.delivery.opportunistic_fallback,
            dane: config.delivery.dane,
            resolver,
            identity,
            timeout_scale: config.delivery.phase_timeout_scale,
            per_destination: config.delivery.max_connections_per_destination,
        })
    }

    /// The ladder to `addr`, a server of `hop`, for mail to `domain`,
    /// under DANE when `dane` says what it makes mandatory.
    pub fn ladder<'a>(
        &'a self,
        connector: &'a Connector,
        domain: &'a MailDomain,
        hop: &'a Hop,
        addr: SocketAddr,
        dane: Option<&'a Mandatory>,
    ) -> Ladder<'a> {
        Ladder {
            hostname: &self.hostname,
            connect_timeout: self.connect_timeout,
            timeout_scale: self.timeout_scale,
            fallback: self.fallback,
            identity: self.identity.as_deref(),
            connector,
            domain,
            hop,
            addr,
            dane,
        }
    }
}

impl<R: Resolve> Settings<R> {
    /// Whether routing asks DANE for mail through `connector`: `[delivery]
    /// dane`, a validating resolver, a level DANE may govern, and an MX
    /// route (RFC 7672 is about MX hosts; a smarthost is the
    /// administrator's word, checked by its connector's level).
    pub fn dane_asked(&self, connector: &Connector) -> bool {
        self.dane
            && self.resolver.validates()
            && dane::asked_for(connector.level())
            && connector.settings.smarthosts.is_empty()
    }
}
