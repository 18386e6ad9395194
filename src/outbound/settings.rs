//! What a reload replaces in the one [`super::deliver::Deliverer`]:
//! routing, connectors and their trust, TLS material, timeouts, DANE.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::connector::{Connector, Connectors};
use super::dane::{self, Mandatory};
use super::ladder::Ladder;
use super::route::{Hop, Resolve};
use super::sts::StsSettings;
use crate::config::domain::MailDomain;
use crate::config::Config;
use crate::mta_sts::cache::Cache;
use crate::mta_sts::lookup::Finder;
use crate::tls::certs::{load_ca_file, Identity};
use crate::tls::trust::TrustStore;

/// What a reload replaces: routing, TLS material, timeouts.
pub struct Settings<R> {
    pub hostname: String,
    pub spool_dir: std::path::PathBuf,
    pub connectors: Connectors,
    pub mx_port: u16,
    pub connect_timeout: Duration,
    /// `[delivery] opportunistic_fallback`.
    pub fallback: bool,
    /// `[delivery] dane`.
    pub dane: bool,
    /// `[delivery] chunking`.
    pub chunking: bool,
    pub resolver: R,
    pub(super) identity: Option<Arc<Identity>>,
    /// Multiplies the SMTP phase timeouts (tests shorten them).
    pub timeout_scale: f64,
    /// `[delivery] max_connections_per_destination`, per host and port.
    pub(super) per_destination: usize,
    /// `[mta_sts]`; `None` when disabled. Its cache is on disk, so a
    /// reload that makes new settings loses nothing.
    pub mta_sts: Option<StsSettings>,
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
            spool_dir: config.server.spool_dir.clone(),
            connectors: Connectors::new(&config.outbound)?,
            mx_port: config.delivery.mx_port,
            connect_timeout: config.delivery.connect_timeout.0,
            fallback: config.delivery.opportunistic_fallback,
            dane: config.delivery.dane,
            chunking: config.delivery.chunking,
            resolver,
            identity,
            timeout_scale: config.delivery.phase_timeout_scale,
            per_destination: config.delivery.max_connections_per_destination,
            mta_sts: sts_settings(config)?,
        })
    }

    /// `probe`: the MTA-STS cache is read, never written.
    pub fn read_only(mut self) -> Self {
        if let Some(sts) = &mut self.mta_sts {
            sts.finder.cache = Cache::new(&self.spool_dir, false);
        }
        self
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
        sts: Option<&'a TrustStore>,
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
            sts,
            requiretls: false,
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

/// `[mta_sts]` made ready: the HTTPS client and the MX trust anchors,
/// both the webpki roots plus `ca_file`; `None` when disabled.
fn sts_settings(config: &Config) -> Result<Option<StsSettings>, String> {
    let sts = &config.mta_sts;
    if !sts.enabled {
        return Ok(None);
    }
    let extra = match &sts.ca_file {
        Some(path) => load_ca_file(path).map_err(|e| format!("[mta_sts] ca_file: {e}"))?,
        None => Vec::new(),
    };
    let mut trust = TrustStore::webpki_roots();
    trust
        .add_certificates(&extra)
        .map_err(|e| format!("[mta_sts] ca_file: {e}"))?;
    let client = crate::https::Client::new(&extra, sts.fetch_timeout.0)
        .map_err(|e| format!("[mta_sts] ca_file: {e}"))?;
    Ok(Some(StsSettings {
        finder: Finder::new(
            Cache::new(&config.server.spool_dir, true),
            client,
            sts.https_port,
        ),
        trust,
    }))
}
