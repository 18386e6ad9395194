//! The administrator's commands that are not `serve`: `check-config`,
//! `probe`, `queue`, `tls-memory` and `cert-info`, each ending in an exit
//! code (0 success, 1 user error, 2 runtime failure).

use std::process::ExitCode;
use std::time::Duration;

use tlsrelay::config::Config;
use tlsrelay::queue::bulk::{Action, Filter, Selection};
use tlsrelay::tls::cert_info;
use tokio::runtime::Runtime;

use super::args::{CertInfoArgs, FilterArgs, QueueAction, TlsMemoryAction};
use super::exit::{runtime_error, say, user_error};

pub(crate) fn probe(
    domain: &str,
    path: &std::path::Path,
    port: Option<u16>,
    requiretls: bool,
    runtime: &Runtime,
) -> ExitCode {
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
        let probe = tlsrelay::outbound::probe::predict_for(&deliverer, &domain, port, requiretls);
        print!("{}", probe.await.text);
        ExitCode::SUCCESS
    })
}

pub(crate) fn queue(action: QueueAction, path: &std::path::Path, runtime: &Runtime) -> ExitCode {
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

pub(crate) fn tls_memory(
    action: TlsMemoryAction,
    path: &std::path::Path,
    runtime: &Runtime,
) -> ExitCode {
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

pub(crate) fn print_json(value: &impl serde::Serialize) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => runtime_error(e),
    }
}

pub(crate) fn check_config(path: &std::path::Path, skip_files: bool) -> ExitCode {
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
        tlsrelay::preflight::check_files(&config)
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

pub(crate) fn run_cert_info(args: CertInfoArgs, runtime: &Runtime) -> ExitCode {
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
