//! The command line as clap parses it: global options, commands and
//! their arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tlsrelay::queue::bulk::{Filter, Selection};
use tlsrelay::tls::generate;

pub(crate) const DEFAULT_CONFIG: &str = "/etc/tlsrelay/tlsrelay.toml";

#[derive(Parser)]
#[command(
    name = "tlsrelay",
    version,
    about = "SMTP relay that protects mail in transit"
)]
pub(crate) struct Cli {
    /// Log output: `text` for terminals, `json` for journald and collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// Log level or filter (`info`, `debug`, `tlsrelay=trace`); RUST_LOG wins when set.
    #[arg(long, global = true, default_value = "info")]
    pub(crate) log_level: String,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the relay in the foreground (for systemd, Type=notify).
    Serve {
        /// Configuration file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate the configuration and print the effective listeners and connectors.
    CheckConfig {
        /// Configuration file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Check syntax and semantics only: do not open the certificate,
        /// key and CA files the configuration names (they are listed).
        #[arg(long)]
        skip_files: bool,
    },
    /// Show what delivery to DOMAIN would do, host by host, sending no mail.
    Probe {
        /// Recipient domain.
        domain: String,
        /// Configuration file (connectors, trust anchors, DNS).
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Port to use for every host instead of the configured ones.
        #[arg(long)]
        port: Option<u16>,
        /// Predict for a message flagged REQUIRETLS (RFC 8689).
        #[arg(long)]
        requiretls: bool,
    },
    /// Queue administration, safe while the relay runs.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
        /// Configuration file (for the spool folder).
        #[arg(short, long, default_value = DEFAULT_CONFIG, global = true)]
        config: PathBuf,
    },
    /// What the broken-TLS memory holds (rungs skipped per host), and clearing it.
    TlsMemory {
        #[command(subcommand)]
        action: TlsMemoryAction,
        /// Configuration file (for the spool folder).
        #[arg(short, long, default_value = DEFAULT_CONFIG, global = true)]
        config: PathBuf,
    },
    /// The transit-security report: per destination domain, how mail travelled.
    ///
    /// Messages and sessions by method (DANE, MTA-STS, connector, TLS
    /// unverified, plaintext, deferred for policy), in total, per UTC day
    /// and per destination domain, worst first. Then the messages flagged
    /// REQUIRETLS (RFC 8689), in total and per domain: "delivered" counts
    /// those that reached the domain (also counted by method); "returned"
    /// those sent back to their sender with 5.7.30 because no next hop of
    /// the domain met the requirement (no session, in no method column).
    /// README, "Transit-security report".
    Report(ReportArgs),
    /// TLS-RPT (RFC 8460) aggregate reports, as the relay would send them.
    TlsRpt {
        #[command(subcommand)]
        action: TlsRptAction,
        /// Configuration file (spool folder, [tls_rpt]).
        #[arg(short, long, default_value = DEFAULT_CONFIG, global = true)]
        config: PathBuf,
    },
    /// Print the certificate details a partner needs to set up forced TLS.
    CertInfo(CertInfoArgs),
    /// Write a self-signed certificate and key for first runs and tests.
    GenCert {
        /// Name the certificate is for (CN and SAN); repeat for more SANs.
        #[arg(long = "hostname", required = true)]
        hostnames: Vec<String>,
        /// Folder to write `NAME.crt` and `NAME.key` into.
        #[arg(long)]
        out: PathBuf,
        /// File name stem.
        #[arg(long, default_value = "relay")]
        name: String,
        /// Key algorithm.
        #[arg(long, value_enum, default_value_t = generate::KeyType::EcdsaP256)]
        key_type: generate::KeyType,
        /// Validity in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum QueueAction {
    /// Every queued message: id, age, size, sender, each recipient's state and last reason.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        filter: FilterArgs,
        /// Only messages on hold.
        #[arg(long)]
        held: bool,
    },
    /// One message: envelope, delivery state, attempts, headers.
    Show {
        id: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Try now: one message, or every one with --all.
    Retry {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Remove a message, or every one with --all (narrowed by --domain, --deferred), without notifying anyone.
    Delete {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Give up on a message: the sender gets a delivery status notification.
    Bounce { id: String },
    /// Keep a message (or every one for a domain, or all) but never deliver or expire it until released.
    Hold(Which),
    /// Deliver held messages again, at once.
    Release(Which),
}

/// Narrows `list` and `delete --all`.
#[derive(Args)]
pub(crate) struct FilterArgs {
    /// Only messages with a recipient still pending in this domain.
    #[arg(long, value_name = "DOMAIN")]
    pub(crate) domain: Option<String>,
    /// Only messages that have had a failed attempt.
    #[arg(long)]
    pub(crate) deferred: bool,
}

/// One message, every one for a domain, or all, for `hold` and `release`.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct Which {
    pub(crate) id: Option<String>,
    /// Every message with a recipient still pending in this domain.
    #[arg(long, value_name = "DOMAIN")]
    pub(crate) domain: Option<String>,
    /// Every message.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Subcommand)]
pub(crate) enum TlsMemoryAction {
    /// Every host and rung: state, failures, first and last failure, until when.
    List,
    /// Forget a host (MX or smarthost name, IP, or IP:port), or everything with --all.
    Forget {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        host: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args)]
pub(crate) struct CertInfoArgs {
    /// PEM file holding a certificate or a chain (leaf first).
    #[arg(required_unless_present = "connect", conflicts_with = "connect")]
    pub(crate) pem_file: Option<PathBuf>,
    /// Fetch the chain from a server instead (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) connect: Option<String>,
    /// Speak SMTP and issue STARTTLS before the handshake (with --connect).
    #[arg(long, requires = "connect")]
    pub(crate) starttls: bool,
    /// Server name to send (SNI) and to check the certificate against; defaults to HOST.
    #[arg(long, requires = "connect")]
    pub(crate) servername: Option<String>,
    /// Extra trust anchors (PEM), besides the webpki roots; may repeat.
    #[arg(long = "ca-file")]
    pub(crate) ca_files: Vec<PathBuf>,
    /// Seconds allowed for connecting, the SMTP dialogue and the handshake.
    #[arg(long, default_value_t = 30)]
    pub(crate) timeout: u64,
    /// Machine-readable output.
    #[arg(long)]
    pub(crate) json: bool,
}

impl FilterArgs {
    pub(crate) fn parse(self, held: bool) -> Result<Filter, tlsrelay::config::domain::DomainError> {
        Ok(Filter {
            domain: self.domain.map(|d| d.parse()).transpose()?,
            deferred: self.deferred,
            held,
        })
    }
}

impl Which {
    pub(crate) fn selection(self) -> Result<Selection, tlsrelay::config::domain::DomainError> {
        Ok(match self.id {
            Some(id) => Selection::Id(id),
            None => Selection::Matching(Filter {
                domain: self.domain.map(|d| d.parse()).transpose()?,
                ..Filter::default()
            }),
        })
    }
}

/// `tlsrelay report`.
#[derive(Args)]
pub(crate) struct ReportArgs {
    /// UTC days to cover, today included.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub(crate) days: u32,
    /// Only this destination domain.
    #[arg(long)]
    pub(crate) domain: Option<String>,
    /// One JSON object (README, "Transit-security report").
    #[arg(long, conflicts_with = "html")]
    pub(crate) json: bool,
    /// Write a self-contained HTML page with charts to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) html: Option<PathBuf>,
    /// Configuration file (for the spool folder).
    #[arg(short, long, default_value = DEFAULT_CONFIG)]
    pub(crate) config: PathBuf,
}

#[derive(Subcommand)]
pub(crate) enum TlsRptAction {
    /// The reports of one UTC day (default: today so far), one per policy domain, as a JSON array.
    Show {
        /// The day, YYYY-MM-DD (UTC).
        #[arg(long)]
        day: Option<String>,
        /// Only this policy domain.
        #[arg(long)]
        domain: Option<String>,
    },
}
