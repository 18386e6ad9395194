//! How a command ends: a message on standard error and the exit code.

use std::process::ExitCode;

/// Prints to stderr; a stderr that is gone is not worth a panic.
pub(crate) fn say(text: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// A fatal error of `serve`, logged (one event per line of it), then `code`.
pub(crate) fn fatal(e: impl std::fmt::Display, code: ExitCode) -> ExitCode {
    for line in e.to_string().lines() {
        tracing::error!(error = line, "cannot start");
    }
    code
}

pub(crate) fn user_error(e: impl std::fmt::Display) -> ExitCode {
    say(format_args!("{e}"));
    ExitCode::from(1)
}

pub(crate) fn runtime_error(e: impl std::fmt::Display) -> ExitCode {
    say(format_args!("error: {e}"));
    ExitCode::from(2)
}
