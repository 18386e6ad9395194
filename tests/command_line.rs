//! The command line's exit codes (DESIGN.md §2): 0 success, 1 user error
//! (a bad argument is one), 2 runtime failure; `--help` and `--version`
//! succeed.

use std::process::{Command, Output};

fn tlsrelay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
        .args(args)
        .output()
        .expect("run tlsrelay")
}

#[test]
fn bad_arguments_are_user_errors() {
    for args in [
        &[][..],
        &["--no-such-flag"],
        &["no-such-command"],
        &["serve", "--bogus"],
        &["queue", "retry"],
        &["queue", "retry", "X", "--all"],
        &["gen-cert", "--out", "/nonexistent"],
        &["cert-info"],
        &["--log-format", "xml", "check-config"],
    ] {
        let out = tlsrelay(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        // What was wrong, and where to look.
        assert!(
            err.contains("Usage: tlsrelay") || err.contains("try '--help'"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_and_version_succeed() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["queue", "--help"],
        &["help", "queue", "retry"],
        &["help", "queue", "hold"],
        &["--version"],
        &["-V"],
    ] {
        let out = tlsrelay(args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {text}");
        assert!(text.contains("tlsrelay"), "{args:?}: {text}");
    }
}
