//! The `tlsrelay` command line: parse arguments, set up logging, run one
//! command, turn its outcome into an exit code (0 success, 1 user error,
//! 2 runtime failure; DESIGN.md §2).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tlsrelay::config::Config;
use tlsrelay::queue::bulk::{Action, Filter, Selection};
use tlsrelay::tls::{cert_info, generate};
use tokio::runtime::Runtime;

const DEFAULT_CONFIG: &str = "/etc/tlsrelay/tlsrelay.toml";

#[derive(Parser)]
#[command(
    name = "tlsrelay",
    version,
    about = "SMTP relay that protects mail in transit"
)]
struct Cli {
    /// Log output: `text` for terminals, `json` for journald and collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level or filter (`info`, `debug`, `tlsrelay=trace`); RUST_LOG wins when set.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
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
enum QueueAction {
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
struct FilterArgs {
    /// Only messages with a recipient still pending in this domain.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// Only messages that have had a failed attempt.
    #[arg(long)]
    deferred: bool,
}

/// One message, every one for a domain, or all, for `hold` and `release`.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct Which {
    id: Option<String>,
    /// Every message with a recipient still pending in this domain.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// Every message.
    #[arg(long)]
    all: bool,
}

#[derive(Subcommand)]
enum TlsMemoryAction {
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
struct CertInfoArgs {
    /// PEM file holding a certificate or a chain (leaf first).
    #[arg(required_unless_present = "connect", conflicts_with = "connect")]
    pem_file: Option<PathBuf>,
    /// Fetch the chain from a server instead (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<String>,
    /// Speak SMTP and issue STARTTLS before the handshake (with --connect).
    #[arg(long, requires = "connect")]
    starttls: bool,
    /// Server name to send (SNI) and to check the certificate against; defaults to HOST.
    #[arg(long, requires = "connect")]
    servername: Option<String>,
    /// Extra trust anchors (PEM), besides the webpki roots; may repeat.
    #[arg(long = "ca-file")]
    ca_files: Vec<PathBuf>,
    /// Seconds allowed for connecting, the SMTP dialogue and the handshake.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(&e),
    };
    let log = init_logging(cli.log_format, &cli.log_level);
    // One runtime for whichever command runs: `serve` needs its threads,
    // the others block on one future.
    let code = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => run(cli.command, &runtime),
        Err(e) => runtime_error(e),
    };
    // The last lines (the stop of `serve`), if the output takes them soon.
    if let Some(log) = log {
        log.flush(LOG_FLUSH_AT_EXIT);
    }
    code
}

/// `--help` and `--version` (exit 0), or a bad command line: a user
/// error, exit 1 (DESIGN.md §2), where clap alone would exit 2, the code
/// of a runtime failure.
fn usage(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    match e.use_stderr() {
        true => ExitCode::from(1),
        false => ExitCode::SUCCESS,
    }
}

/// How long the exit waits for queued log lines to be written.
const LOG_FLUSH_AT_EXIT: Duration = Duration::from_secs(2);

fn run(command: Command, runtime: &Runtime) -> ExitCode {
    match command {
        Command::Serve { config } => serve(&config, runtime),
        Command::Probe {
            domain,
            config,
            port,
        } => probe(&domain, &config, port, runtime),
        Command::CheckConfig { config, skip_files } => check_config(&config, skip_files),
        Command::Queue { action, config } => queue(action, &config, runtime),
        Command::TlsMemory { action, config } => tls_memory(action, &config, runtime),
        Command::CertInfo(args) => run_cert_info(args, runtime),
        Command::GenCert {
            hostnames,
            out,
            name,
            key_type,
            days,
            force,
        } => {
            let options = generate::Options {
                hostnames,
                key_type,
                days,
            };
            match generate::write_files(&options, &out, &name, force) {
                Ok(files) => {
                    println!("wrote {}", files.cert.display());
                    println!("wrote {}", files.key.display());
                    ExitCode::SUCCESS
                }
                Err(e) => user_error(e),
            }
        }
    }
}

/// `serve`'s fatal errors are log events, in the format chosen for the
/// log (`--log-format json` gives JSON, which a log collector parses like
/// every other line): one `cannot start` event per line of the error.
fn serve(path: &std::path::Path, runtime: &Runtime) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => return fatal(errors, ExitCode::from(1)),
    };
    runtime.block_on(async {
        let daemon = match tlsrelay::daemon::Daemon::start(&config).await {
            Ok(daemon) => daemon,
            Err(e) if e.is_user_error() => return fatal(e, ExitCode::from(1)),
            Err(e) => return fatal(e, ExitCode::from(2)),
        };
        let shutdown = tokio_util::sync::CancellationToken::new();
        match signals(shutdown.clone(), daemon.reloader()) {
            Ok(()) => {}
            Err(e) => return fatal(e, ExitCode::from(2)),
        }
        tlsrelay::notify::notify("READY=1");
        if let Some(every) = tlsrelay::notify::watchdog_interval() {
            // Proves to systemd that the runtime still schedules work.
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(every);
                loop {
                    ticks.tick().await;
                    tlsrelay::notify::notify("WATCHDOG=1");
                }
            });
        }
        daemon.run(shutdown).await;
        ExitCode::SUCCESS
    })
}

fn probe(domain: &str, path: &std::path::Path, port: Option<u16>, runtime: &Runtime) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => return user_error(errors),
    };
    let domain: tlsrelay::config::domain::MailDomain = match domain.parse() {
        Ok(domain) => domain,
        Err(e) => return user_error(e),
    };
    runtime.block_on(async {
        // What the relay's memory says, read only: probe changes nothing.
        let memory = std::sync::Arc::new(tlsrelay::outbound::memory::TlsMemory::reader(
            &config.server.spool_dir,
            config.delivery.broken_tls_memory.0,
            tlsrelay::outbound::memory_file::system_clock(),
        ));
        let deliverer = match tlsrelay::daemon::deliverer(&config, memory) {
            Ok(deliverer) => deliverer,
            Err(e) if e.is_user_error() => return user_error(e),
            Err(e) => return runtime_error(e),
        };
        print!(
            "{}",
            tlsrelay::outbound::probe::probe(&deliverer, &domain, port).await
        );
        ExitCode::SUCCESS
    })
}

impl FilterArgs {
    fn parse(self, held: bool) -> Result<Filter, tlsrelay::config::domain::DomainError> {
        Ok(Filter {
            domain: self.domain.map(|d| d.parse()).transpose()?,
            deferred: self.deferred,
            held,
        })
    }
}

impl Which {
    fn selection(self) -> Result<Selection, tlsrelay::config::domain::DomainError> {
        Ok(match self.id {
            Some(id) => Selection::Id(id),
            None => Selection::Matching(Filter {
                domain: self.domain.map(|d| d.parse()).transpose()?,
                ..Filter::default()
            }),
        })
    }
}

fn queue(action: QueueAction, path: &std::path::Path, runtime: &Runtime) -> ExitCode {
    use tlsrelay::queue::{admin, control::Request};
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => return user_error(errors),
    };
    let spool_dir = &config.server.spool_dir;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let request = match action {
        QueueAction::List { json, filter, held } => {
            let filter = match filter.parse(held) {
                Ok(filter) => filter,
                Err(e) => return user_error(e),
            };
            return match admin::entries(spool_dir, &filter) {
                Ok(entries) if json => print_json(&entries),
                Ok(entries) if entries.is_empty() && filter != Filter::default() => {
                    println!("No queued message matches.");
                    ExitCode::SUCCESS
                }
                Ok(entries) => {
                    print!("{}", admin::render_list(&entries, now));
                    ExitCode::SUCCESS
                }
                Err(e) if e.is_user_error() => user_error(e),
                Err(e) => runtime_error(e),
            };
        }
        QueueAction::Show { id, json } => {
            return match admin::entry(spool_dir, &id) {
                Ok((entry, _)) if json => print_json(&entry),
                Ok((entry, content)) => {
                    print!("{}", admin::render_show(&entry, &content, now));
                    ExitCode::SUCCESS
                }
                Err(e) if e.is_user_error() => user_error(e),
                Err(e) => runtime_error(e),
            };
        }
        QueueAction::Retry { id, .. } => Request::Retry { id },
        QueueAction::Delete {
            id: Some(id),
            filter:
                FilterArgs {
                    domain: None,
                    deferred: false,
                },
            ..
        } => Request::Delete { id },
        QueueAction::Delete { id: Some(_), .. } => {
            return user_error(
                "--domain and --deferred go with --all: `queue delete --all --domain D`",
            )
        }
        QueueAction::Delete {
            id: None, filter, ..
        } => match filter.parse(false) {
            Ok(filter) => Request::Bulk {
                action: Action::Delete,
                selection: Selection::Matching(filter),
            },
            Err(e) => return user_error(e),
        },
        QueueAction::Bounce { id } => Request::Bounce { id },
        QueueAction::Hold(which) => match which.selection() {
            Ok(selection) => Request::Bulk {
                action: Action::Hold,
                selection,
            },
            Err(e) => return user_error(e),
        },
        QueueAction::Release(which) => match which.selection() {
            Ok(selection) => Request::Bulk {
                action: Action::Release,
                selection: match selection {
                    // Only what is held is released.
                    Selection::Matching(filter) => Selection::Matching(Filter {
                        held: true,
                        ..filter
                    }),
                    one => one,
                },
            },
            Err(e) => return user_error(e),
        },
    };
    let notices = tlsrelay::queue::finish::Notices::of(&config);
    match runtime.block_on(admin::execute(spool_dir, &notices, &request)) {
        Ok(response) if response.ok => {
            println!("{}", response.message);
            ExitCode::SUCCESS
        }
        Ok(response) => user_error(response.message),
        Err(e) if e.is_user_error() => user_error(e),
        Err(e) => runtime_error(e),
    }
}

fn tls_memory(action: TlsMemoryAction, path: &std::path::Path, runtime: &Runtime) -> ExitCode {
    use tlsrelay::queue::control::Request;
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => return user_error(errors),
    };
    let request = match action {
        TlsMemoryAction::List => Request::TlsMemoryList,
        TlsMemoryAction::Forget { host, .. } => Request::TlsMemoryForget { host },
    };
    let execute = tlsrelay::outbound::memory_admin::execute(
        &config.server.spool_dir,
        config.delivery.broken_tls_memory.0,
        &request,
    );
    match runtime.block_on(execute) {
        Ok(response) if response.ok => {
            print!("{}", response.message);
            if !response.message.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Ok(response) => user_error(response.message),
        Err(e) if e.is_user_error() => user_error(e),
        Err(e) => runtime_error(e),
    }
}

fn print_json(value: &impl serde::Serialize) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => runtime_error(e),
    }
}

/// SIGTERM or SIGINT starts the graceful stop; SIGHUP reloads.
fn signals(
    shutdown: tokio_util::sync::CancellationToken,
    reloader: tlsrelay::daemon::Reloader,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                _ = int.recv() => tracing::info!("SIGINT: stopping"),
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    tlsrelay::notify::reloading();
                    if let Err(e) = reloader.reload().await {
                        for line in e.to_string().lines() {
                            tracing::error!(error = %line, "reload failed; the configuration in force stays");
                        }
                    }
                    tlsrelay::notify::notify("READY=1");
                    continue;
                }
            }
            break;
        }
        tlsrelay::notify::notify("STOPPING=1");
        shutdown.cancel();
    });
    Ok(())
}

fn check_config(path: &std::path::Path, skip_files: bool) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => return user_error(errors),
    };
    let checked = if skip_files {
        for (key, file) in config.named_files() {
            say(format_args!(
                "{}: not read (--skip-files): {key} = {}",
                config.file().display(),
                file.display()
            ));
        }
        Ok(config.warnings())
    } else {
        config.check_files()
    };
    match checked {
        Ok(notes) => {
            for note in notes {
                say(format_args!("{note}"));
            }
            print!("{}", config.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => user_error(errors),
    }
}

fn run_cert_info(args: CertInfoArgs, runtime: &Runtime) -> ExitCode {
    let report = match (&args.pem_file, &args.connect) {
        (Some(file), _) => match cert_info::from_file(file, &args.ca_files) {
            Ok(report) => report,
            Err(e) => return user_error(e),
        },
        (None, Some(target)) => {
            let request = cert_info::ConnectRequest {
                target: target.clone(),
                starttls: args.starttls,
                servername: args.servername.clone(),
                ca_files: args.ca_files.clone(),
                timeout: Duration::from_secs(args.timeout),
            };
            match runtime.block_on(tlsrelay::outbound::cert_connect::from_server(&request)) {
                Ok(report) => report,
                Err(e) if e.is_user_error() => return user_error(e),
                Err(e) => return runtime_error(e),
            }
        }
        (None, None) => unreachable!("clap requires a PEM file or --connect"),
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    ExitCode::SUCCESS
}

/// Logs to stderr through a [`LogSink`](tlsrelay::log_sink::LogSink):
/// a stuck, slow or closed stderr (`serve 2>&1 | reader` with the reader
/// stalled or gone) drops log lines, counted, and never blocks or panics
/// the relay (DESIGN §7). The sink, to flush at exit.
fn init_logging(format: LogFormat, level: &str) -> Option<tlsrelay::log_sink::LogSink> {
    use tlsrelay::log_sink::{LogSink, QUEUE_LINES};
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let sink = LogSink::start(std::io::stderr(), QUEUE_LINES).ok();
    let writer = match &sink {
        Some(sink) => BoxMakeWriter::new(sink.clone()),
        // No thread for it: stderr directly, still never a panic.
        None => BoxMakeWriter::new(std::io::stderr),
    };
    // Asked of the process's real stderr, not of the sink (a queue to a
    // thread): colour codes only for a person at a terminal, never in a
    // file, a pipe or the journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        // Its report of a failed write is an eprintln!, which panics.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    sink
}

/// Prints to stderr; a stderr that is gone is not worth a panic.
fn say(text: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// A fatal error of `serve`, logged (one event per line of it), then `code`.
fn fatal(e: impl std::fmt::Display, code: ExitCode) -> ExitCode {
    for line in e.to_string().lines() {
        tracing::error!(error = line, "cannot start");
    }
    code
}

fn user_error(e: impl std::fmt::Display) -> ExitCode {
    say(format_args!("{e}"));
    ExitCode::from(1)
}

fn runtime_error(e: impl std::fmt::Display) -> ExitCode {
    say(format_args!("error: {e}"));
    ExitCode::from(2)
}
