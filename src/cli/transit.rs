//! `tlsrelay report` and `tlsrelay tls-rpt show`: read the transit files
//! of the spool directly (no lock, no control socket), so they work
//! whether the relay runs or not.

use std::process::ExitCode;

use tlsrelay::config::Config;
use tlsrelay::transit::{files, journal, report, report_html, report_text, tls_rpt};

use super::args::{ReportArgs, TlsRptAction};
use super::exit::{runtime_error, user_error};

/// A domain as the store keys it: lower case, no final dot, A-label.
fn domain_key(text: &str) -> Result<String, String> {
    let text = text.trim().trim_end_matches('.');
    match text.parse::<tlsrelay::config::domain::MailDomain>() {
        Ok(domain) => Ok(domain.to_string()),
        Err(e) => Err(format!("--domain {text}: {e}")),
    }
}

fn today() -> time::Date {
    journal::day_of(std::time::SystemTime::now())
}

pub(crate) fn report(args: &ReportArgs) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(errors) => return user_error(errors),
    };
    let only = match args.domain.as_deref().map(domain_key).transpose() {
        Ok(only) => only,
        Err(e) => return user_error(e),
    };
    let to = today();
    let from = to.saturating_sub(time::Duration::days(i64::from(args.days) - 1));
    let days = match files::read_range(&config.server.spool_dir, from, to) {
        Ok(days) => days,
        Err(e) => return runtime_error(format!("reading the transit records: {e}")),
    };
    let report = report::build(&days, from, to, only.as_deref());
    if let Some(file) = &args.html {
        return match std::fs::write(file, report_html::render(&report)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => user_error(format!("{}: {e}", file.display())),
        };
    }
    let text = match args.json {
        true => match serde_json::to_string_pretty(&report) {
            Ok(json) => json + "\n",
            Err(e) => return runtime_error(e),
        },
        false => report_text::render(&report),
    };
    print!("{text}");
    ExitCode::SUCCESS
}

pub(crate) fn tls_rpt(action: TlsRptAction, path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(errors) => return user_error(errors),
    };
    let TlsRptAction::Show { day, domain } = action;
    let day = match day.as_deref() {
        None => today(),
        Some(text) => match journal::parse_day(text) {
            Some(day) => day,
            None => return user_error(format!("--day {text}: not a date (YYYY-MM-DD)")),
        },
    };
    let only = match domain.as_deref().map(domain_key).transpose() {
        Ok(only) => only,
        Err(e) => return user_error(e),
    };
    let folder = journal::folder(&config.server.spool_dir);
    let counts = match files::read_day(&folder, day) {
        Ok(read) => read.counts,
        Err(e) => return runtime_error(format!("reading the transit records: {e}")),
    };
    let reports = tls_rpt::reports(
        day,
        &counts,
        &tls_rpt::Submitter::of(&config),
        only.as_deref(),
    );
    match serde_json::to_string_pretty(&reports) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => runtime_error(e),
    }
}
