//! `tlsrelay serve`: the pieces wired together, in the order that makes a
//! failed start say exactly what is wrong before anything listens.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigErrors};
use crate::current::Current;
use crate::dns::Dns;
use crate::inbound::listener::Listeners;
use crate::inbound::policy::InboundPolicy;
use crate::inbound::{ServerState, Timeouts};
use crate::outbound::deliver::{Deliverer, Settings};
use crate::outbound::memory::TlsMemory;
use crate::outbound::memory_file::system_clock;
use crate::queue::control;
use crate::queue::finish::Notices;
use crate::queue::manager::QueueManager;
use crate::queue::schedule::Schedule;
use crate::queue::spool::{Spool, SpoolError};
use crate::queue::state::StateStore;
use crate::tls::server::ServerTls;
use crate::tls::{certs, generate};
use crate::transit::Store;

mod memory;
mod reload;

pub use memory::{release_free_memory, tune_allocator};

use reload::restart_only;
pub use reload::Reloader;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration or a file it names is wrong (exit 1).
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("{0}")]
    Spool(#[from] SpoolError),
    #[error("{0}")]
    Certificate(String),
    #[error("{0}")]
    Dns(#[from] crate::dns::DnsError),
    /// The network refused (exit 2).
    #[error("{0}")]
    Listen(std::io::Error),
}

impl StartError {
    /// True for errors the administrator fixes in files (exit code 1).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, StartError::Listen(_))
    }
}

/// A started relay: listeners bound, spool open (the queue manager
/// reads what it holds as it starts).
pub struct Daemon {
    listeners: Listeners,
    reloader: Reloader,
    queue: QueueManager<Deliverer<Dns>>,
    control: tokio::net::UnixListener,
    metrics: Option<tokio::net::TcpListener>,
    memory: Arc<TlsMemory>,
    transit: Arc<Store>,
    spool: Spool,
    /// The TLS-RPT sender, when `[tls_rpt] enabled`.
    tls_rpt: Option<TlsRptSender>,
}

type TlsRptSender = crate::tls_rpt::send::Sender<crate::tls_rpt::relay::RelayOutside<Dns>>;

impl Daemon {
    pub async fn start(config: &Config) -> Result<Daemon, StartError> {
        open_file_limit(config.server.max_connections);
        // The first random number of a process costs aws-lc tens of
        // milliseconds of CPU (seeding its entropy source): paid here, not
        // by the first session or attempt on a runtime thread.
        crate::random::u64();
        ensure_certificate(config)?;
        for warning in crate::preflight::check_files(config)? {
            tracing::warn!("{warning}");
        }
        let spool = Spool::open(&config.server.spool_dir)?;
        tracing::info!(spool = %config.server.spool_dir.display(), "spool opened");
        let memory = Arc::new(TlsMemory::open(
            &config.server.spool_dir,
            config.delivery.broken_tls_memory.0,
            system_clock(),
        ));
        // One set of resolvers (and caches) for delivery and the
        // reverse lookups of clients.
        let dns = Dns::new(&config.dns)?;
        if config.dns.dnssec && config.delivery.dane {
            tokio::spawn(check_dnssec(dns.clone()));
        }
        let transit = open_transit(config)?;
        let deliverer = Deliverer::recording(
            outbound_settings(config, dns.clone())?,
            memory.clone(),
            transit.clone(),
        );
        let queue = queue_manager(config, &spool, deliverer.clone())?;
        let outbox = crate::tls_rpt::queue_mail::Outbox {
            spool: spool.clone(),
            queue: queue.handle(),
            hostname: config.server.hostname.to_string(),
        };
        let tls_rpt = crate::tls_rpt::relay::sender(config, dns.clone(), outbox)
            .map_err(StartError::Certificate)?;
        // Holding the spool's lock, so a socket file left by a dead relay is ours to replace.
        let control =
            control::bind(&config.server.spool_dir).map_err(|source| SpoolError::Folder {
                path: control::socket_path(&config.server.spool_dir),
                source,
            })?;
        let state = Current::new(server_state(config, &spool, queue.handle(), &dns)?);
        let reloader = Reloader {
            file: config.file().to_path_buf(),
            fixed: Arc::new(restart_only(config)),
            inbound: state.clone(),
            outbound: queue.outbound_slot(),
            spool: spool.clone(),
            queue: queue.handle(),
            memory: memory.clone(),
            deliverer,
        };
        let addrs = |list: &[crate::config::values::ListenAddr]| {
            list.iter().map(|a| a.0).collect::<Vec<SocketAddr>>()
        };
        let listeners = Listeners::bind(
            &addrs(&config.server.listen),
            &addrs(&config.server.listen_implicit_tls),
            state,
            config.server.max_connections,
            config.server.max_connections_per_ip,
            config.server.shutdown_grace.0,
        )
        .await
        .map_err(StartError::Listen)?;
        for (address, implicit) in listeners.local_addrs() {
            let mode = if implicit { "implicit-tls" } else { "smtp" };
            tracing::info!(%address, mode, "listening");
        }
        let metrics = crate::metrics::bind(config.admin.metrics_listen.as_ref().map(|a| a.0))
            .await
            .map_err(StartError::Listen)?;
        if let Some(cert) = &config.tls.cert {
            crate::metrics::certificate_expiry("tls.cert", cert);
        }
        Ok(Daemon {
            listeners,
            reloader,
            queue,
            control,
            metrics,
            memory,
            transit,
            spool,
            tls_rpt,
        })
    }

    /// The bound addresses (port 0 resolved) and whether each is implicit TLS.
    pub fn local_addrs(&self) -> Vec<(SocketAddr, bool)> {
        self.listeners.local_addrs()
    }

    /// What SIGHUP calls; hand it out before [`Daemon::run`].
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Serves until `shutdown` is cancelled, then stops gracefully.
    pub async fn run(self, shutdown: CancellationToken) {
        let commands = self.queue.commands();
        let memory = self.memory.clone();
        let local: control::Local =
            Arc::new(move |request| crate::outbound::memory_admin::answer(&memory, request));
        let metrics = async {
            if let Some(listener) = self.metrics {
                crate::metrics::serve(listener, shutdown.clone()).await;
            }
        };
        let tls_rpt = async {
            if let Some(sender) = self.tls_rpt {
                let clock = crate::tls_rpt::run::Clock::from_env();
                crate::tls_rpt::run::run(sender, clock, shutdown.clone()).await;
            }
        };
        tokio::join!(
            self.listeners.run(shutdown.clone()),
            control::serve(self.control, commands, local, shutdown.clone()),
            metrics,
            tls_rpt,
            self.queue.run(shutdown.clone())
        );
        // Done records of the last deliveries on disk, so that a clean
        // stop delivers nothing twice.
        self.spool.flush().await;
        // The writer thread may not have caught up with the last change
        // (a `tls-memory forget` just before the stop must hold).
        let memory = self.memory;
        match tokio::task::spawn_blocking(move || memory.save()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not save the broken-TLS memory"),
            Err(e) => tracing::warn!(error = %e, "could not save the broken-TLS memory"),
        }
        // The last second of transit events, synced before the exit.
        let transit = self.transit;
        match tokio::task::spawn_blocking(move || transit.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not sync the transit journal"),
            Err(e) => tracing::warn!(error = %e, "could not sync the transit journal"),
        }
        tracing::info!("stopped");
    }
}

/// The transit store of the spool (`SPOOL_DIR/transit/`): finished
/// days compacted, old ones pruned, today counted again.
fn open_transit(config: &Config) -> Result<Arc<Store>, StartError> {
    let spool_dir = &config.server.spool_dir;
    let store =
        Store::open(spool_dir, config.report.history.0).map_err(|source| SpoolError::Folder {
            path: crate::transit::journal::folder(spool_dir),
            source,
        })?;
    tracing::info!(folder = %store.folder().display(), "transit records opened");
    Ok(Arc::new(store))
}

/// What a configuration makes of the inbound side: certificate, client
/// CAs, connectors, timeouts. Built at start and anew by each reload.
/// Raises the open-file limit and says what it is; warns when
/// `max_connections` cannot fit in it (each session is one descriptor, and
/// the spool, listeners and outbound connections need some more).
fn open_file_limit(max_connections: usize) {
    match crate::net::raise_open_file_limit() {
        Ok((before, now)) => {
            tracing::info!(limit = now, before, "open-file limit (RLIMIT_NOFILE)");
            if max_connections.saturating_add(256) as libc::rlim_t > now {
                tracing::warn!(
                    limit = now,
                    max_connections,
                    "the open-file limit is too low for max_connections: raise the hard limit (LimitNOFILE= in the unit) or lower max_connections"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
    }
}

fn server_state(
    config: &Config,
    spool: &Spool,
    queue: crate::queue::handle::QueueHandle,
    dns: &Dns,
) -> Result<ServerState, StartError> {
    Ok(ServerState {
        policy: Arc::new(InboundPolicy::new(config, queue.backlog())),
        tls: server_tls(config)?,
        spool: spool.clone(),
        timeouts: Timeouts::new(config),
        dns: config.dns.reverse_lookups.then(|| dns.clone()),
        queue,
    })
}

/// The outbound side: routing DNS, our client certificate, the schedule.
fn queue_manager(
    config: &Config,
    spool: &Spool,
    deliverer: Deliverer<Dns>,
) -> Result<QueueManager<Deliverer<Dns>>, StartError> {
    Ok(QueueManager::new(
        spool.clone(),
        StateStore::new(spool),
        Schedule::new(&config.queue),
        deliverer,
        Notices::of(config),
    )
    .with_shutdown_grace(config.server.shutdown_grace.0))
}

/// The outbound machinery (routing DNS, trust anchors, our client
/// certificate, the broken-TLS memory), for `probe`; `serve` builds its
/// own from the resolvers it shares with the listeners.
pub fn deliverer(config: &Config, memory: Arc<TlsMemory>) -> Result<Deliverer<Dns>, StartError> {
    let dns = Dns::new(&config.dns)?;
    Ok(Deliverer::with_settings(
        outbound_settings(config, dns)?.read_only(),
        memory,
    ))
}

/// DANE trusts nothing the resolver cannot prove: behind one that strips
/// DNSSEC every MX answer is bogus and mail DANE may govern waits. Say so
/// once at start-up, in the administrator's terms, instead of leaving
/// them to find it in deferrals.
async fn check_dnssec(dns: Dns) {
    match dns.validation_works().await {
        Ok(()) => tracing::info!("DNSSEC validation works through the configured name servers"),
        Err(why) => tracing::warn!(
            reason = %why,
            "DNSSEC validation fails through the configured name servers: every MX answer will be bogus and mail by MX lookup will wait in the queue (4.7.5, naming DANE). Use name servers that pass DNSSEC records, or set [delivery] dane = false"
        ),
    }
}

/// What a reload swaps into the deliverer: connectors with their trust
/// anchors, our client certificate, the resolver, timeouts.
fn outbound_settings(config: &Config, dns: Dns) -> Result<Settings<Dns>, StartError> {
    let identity = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) if cert.exists() && key.exists() => {
            Some(Arc::new(certs::load_identity(cert, key).map_err(|e| {
                StartError::Config(config.error("tls.cert", e.to_string()).into())
            })?))
        }
        _ => None,
    };
    Settings::new(config, dns, identity).map_err(StartError::Certificate)
}

/// `generate_if_missing`: a self-signed certificate for `server.hostname`.
fn ensure_certificate(config: &Config) -> Result<(), StartError> {
    let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) else {
        return Ok(());
    };
    if !config.tls.generate_if_missing {
        return Ok(());
    }
    let options = generate::Options {
        hostnames: vec![config.server.hostname.to_string()],
        key_type: generate::KeyType::EcdsaP256,
        days: 825,
    };
    match generate::generate_if_missing(&options, cert, key) {
        Ok(true) => {
            tracing::warn!(cert = %cert.display(), "generated a self-signed certificate; see certs/README.md to use a real one");
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(StartError::Config(
            config.error("tls.cert", e.to_string()).into(),
        )),
    }
}

fn server_tls(config: &Config) -> Result<Option<ServerTls>, StartError> {
    let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) else {
        return Ok(None);
    };
    let identity = certs::load_identity(cert, key)
        .map_err(|e| StartError::Config(config.error("tls.cert", e.to_string()).into()))?;
    let mut client_ca = Vec::new();
    for (i, path) in config.tls.client_ca.iter().enumerate() {
        let certs = certs::load_ca_file(path).map_err(|e| {
            StartError::Config(
                config
                    .error(&format!("tls.client_ca[{i}]"), e.to_string())
                    .into(),
            )
        })?;
        client_ca.extend(certs);
    }
    ServerTls::new(identity, &client_ca, config.tls.min_version)
        .map(Some)
        .map_err(|e| StartError::Certificate(format!("{}: {e}", cert.display())))
}
