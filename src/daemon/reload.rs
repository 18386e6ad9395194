//! SIGHUP: the configuration re-read, checked and swapped in, the one
//! deliverer reconfigured, the settings only a restart changes kept as
//! bound at start.

use std::path::PathBuf;
use std::sync::Arc;

use super::{ensure_certificate, outbound_settings, server_state, StartError};
use crate::config::Config;
use crate::current::Current;
use crate::dns::Dns;
use crate::inbound::ServerState;
use crate::outbound::deliver::Deliverer;
use crate::outbound::memory::TlsMemory;
use crate::queue::finish::Notices;
use crate::queue::manager::OutboundSlot;
use crate::queue::schedule::Schedule;
use crate::queue::spool::Spool;

/// Re-reads the configuration file and swaps in what it makes (SIGHUP,
/// DESIGN.md §7): certificates, keys, client CAs and connectors, inbound
/// and outbound, for every session and delivery attempt that starts from
/// then on. What is in progress finishes on what it started with. A new
/// configuration or certificate that is wrong changes nothing.
#[derive(Clone)]
pub struct Reloader {
    pub(super) file: PathBuf,
    /// The settings only a restart can change, as bound at start: what is
    /// in force however often a reload refuses to change them.
    pub(super) fixed: Arc<Vec<(&'static str, String)>>,
    pub(super) inbound: Current<ServerState>,
    pub(super) outbound: OutboundSlot<Deliverer<Dns>>,
    pub(super) spool: Spool,
    pub(super) queue: crate::queue::handle::QueueHandle,
    pub(super) memory: Arc<TlsMemory>,
    /// The one deliverer: a reload swaps its settings, so its
    /// per-destination limits and idle connections carry on.
    pub(super) deliverer: Deliverer<Dns>,
}

impl Reloader {
    /// Reloads; on error the old configuration stays in force and the
    /// error says exactly what is wrong. The configuration, certificates,
    /// keys and CA files are read on the blocking pool, not on a thread
    /// that serves sessions.
    pub async fn reload(&self) -> Result<(), StartError> {
        let reloader = self.clone();
        tokio::task::spawn_blocking(move || reloader.reload_files())
            .await
            .map_err(|e| StartError::Certificate(format!("the reload stopped: {e}")))?
    }

    fn reload_files(&self) -> Result<(), StartError> {
        let config = Config::load(&self.file)?;
        ensure_certificate(&config)?;
        for warning in crate::preflight::check_files(&config)? {
            tracing::warn!("{warning}");
        }
        let dns = Dns::new(&config.dns)?;
        let state = server_state(&config, &self.spool, self.queue.clone(), &dns)?;
        let settings = outbound_settings(&config, dns)?;
        self.memory
            .set_lifetime(config.delivery.broken_tls_memory.0);
        self.inbound.replace(state);
        self.deliverer.reconfigure(settings);
        self.outbound.replace(
            self.deliverer.clone(),
            Schedule::new(&config.queue),
            Notices::of(&config),
        );
        if let Some(cert) = &config.tls.cert {
            crate::metrics::certificate_expiry("tls.cert", cert);
        }
        for ((key, in_force), (_, configured)) in self.fixed.iter().zip(restart_only(&config)) {
            if *in_force != configured {
                tracing::warn!(
                    key,
                    in_force = %in_force,
                    configured = %configured,
                    "this setting changes only with a restart; the value bound at start stays in force until then"
                );
            }
        }
        tracing::info!(
            file = %self.file.display(),
            inbound_connectors = config.inbound.len(),
            outbound_connectors = config.outbound.len(),
            "configuration reloaded"
        );
        Ok(())
    }
}

/// The settings bound at start (sockets, the spool, limits held by the
/// listeners, the transit store and the TLS-RPT sender), with their
/// values as text for comparison.
pub(super) fn restart_only(config: &Config) -> Vec<(&'static str, String)> {
    let server = &config.server;
    vec![
        ("server.listen", format!("{:?}", server.listen)),
        (
            "server.listen_implicit_tls",
            format!("{:?}", server.listen_implicit_tls),
        ),
        ("server.spool_dir", format!("{:?}", server.spool_dir)),
        ("server.max_connections", server.max_connections.to_string()),
        (
            "server.max_connections_per_ip",
            server.max_connections_per_ip.to_string(),
        ),
        (
            "server.shutdown_grace",
            format!("{:?}", server.shutdown_grace),
        ),
        (
            "admin.metrics_listen",
            format!("{:?}", config.admin.metrics_listen),
        ),
        // The transit store and the TLS-RPT sender are made at start.
        ("report.history", format!("{:?}", config.report.history)),
        ("tls_rpt", format!("{:?}", config.tls_rpt)),
    ]
}
