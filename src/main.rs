//! The `tlsrelay` command line: parse arguments, set up logging, run one
//! command, turn its outcome into an exit code (0 success, 1 user error,
//! 2 runtime failure; DESIGN.md §2).

mod cli;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tlsrelay::config::Config;
use tlsrelay::tls::generate;
use tokio::runtime::Runtime;

use cli::admin::{check_config, probe, queue, run_cert_info, tls_memory};
use cli::args::{Cli, Command, LogFormat};
use cli::exit::{fatal, runtime_error, user_error};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(&e),
    };
    let log = init_logging(cli.log_format, &cli.log_level);
    // One runtime for whichever command runs: `serve` needs its threads;
    // the others block on one future, and a runtime on this thread alone
    // spares each command (`queue retry --all` in a script, say) the start
    // and stop of a worker per core.
    let mut builder = match cli.command {
        Command::Serve { .. } => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let code = match builder.enable_all().build() {
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
            requiretls,
        } => probe(&domain, &config, port, requiretls, runtime),
        Command::CheckConfig { config, skip_files } => check_config(&config, skip_files),
        Command::Queue { action, config } => queue(action, &config, runtime),
        Command::TlsMemory { action, config } => tls_memory(action, &config, runtime),
        Command::CertInfo(args) => run_cert_info(args, runtime),
        Command::Report(args) => cli::transit::report(&args),
        Command::TlsRpt { action, config } => cli::transit::tls_rpt(action, &config),
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
    tlsrelay::daemon::tune_allocator();
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => return fatal(errors, ExitCode::from(1)),
    };
    // The daemon runs as a task on the runtime's workers, not on this
    // thread: the queue manager and the listeners are woken for every
    // message, and a wake that crosses to a thread parked in `block_on`
    // costs a futex call and a context switch each time.
    let daemon = async move {
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
    };
    match runtime.block_on(runtime.spawn(daemon)) {
        Ok(code) => code,
        Err(e) => fatal(e, ExitCode::from(2)),
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
