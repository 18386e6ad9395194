//! The README's quick start, as a new user runs it: the relay on
//! `config/tlsrelay.toml`, the demonstration mailbox (`examples/mailbox.rs`)
//! as its "internal mailbox server", and the README's swaks command. Only
//! the fixed ports become port 0; the message must arrive in the mailbox.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::postfix::run_bounded;
use crate::support::relay::Relay;

const MAILBOX: &str = "cargo run --release --example mailbox";
const SWAKS: &str =
    "swaks --server 127.0.0.1:2525 --tls --from you@example.net --to bob@example.test";

/// The mailbox example, built now (a no-op after `cargo test`, which
/// builds examples; a run of this suite alone would find it stale).
fn mailbox_binary() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_tlsrelay"));
    let path = bin.with_file_name("examples").join("mailbox");
    {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = run_bounded(
            Command::new(cargo)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .args(["build", "--example", "mailbox"]),
            Duration::from_secs(600),
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    path
}

/// Kills the mailbox (the process we started) on every way out.
struct Mailbox(Child);

impl Drop for Mailbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "real peer: run by .ci/run"]
fn quick_start_message_reaches_the_mailbox() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    for command in [
        MAILBOX,
        SWAKS,
        "cargo run --release -- serve -c config/tlsrelay.toml",
    ] {
        assert!(
            readme.contains(command),
            "the README no longer says `{command}`"
        );
    }
    let root = tempfile::tempdir().expect("tempdir");
    // The mailbox on port 0 in place of 127.0.0.1:2526; its first line says where.
    let mut child = Command::new(mailbox_binary())
        .current_dir(root.path())
        .args(["127.0.0.1:0", "var/mailbox"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the mailbox");
    let stdout = child.stdout.take().expect("stdout");
    let _mailbox = Mailbox(child);
    let (lines, said) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let first = said
        .recv_timeout(Duration::from_secs(30))
        .expect("mailbox line");
    let address = first
        .strip_prefix("mailbox listening on ")
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();

    let mut config =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/tlsrelay.toml"))
            .expect("config");
    for (from, to) in [
        ("\"127.0.0.1:2525\"", "\"127.0.0.1:0\"".to_string()),
        ("\"127.0.0.1:2526\"", format!("\"{address}\"")),
        ("\"127.0.0.1:9325\"", "\"127.0.0.1:0\"".to_string()),
    ] {
        assert!(config.contains(from), "config/tlsrelay.toml has no {from}");
        config = config.replace(from, &to);
    }
    std::fs::create_dir(root.path().join("config")).expect("mkdir");
    let config_file = root.path().join("config/tlsrelay.toml");
    std::fs::write(&config_file, config).expect("config");
    let dir = root.path().to_path_buf();
    let relay = Relay::start_installed(root, config_file, &[env!("CARGO_BIN_EXE_tlsrelay")]);

    let swaks = SWAKS.replace("127.0.0.1:2525", &relay.smtp.to_string());
    let args: Vec<&str> = swaks.split_whitespace().collect();
    let output = run_bounded(
        Command::new(args[0]).args(&args[1..]),
        Duration::from_secs(30),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let received = said
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("nothing arrived in the mailbox:\n{}", relay.log()));
    assert!(
        received.starts_with("received from <you@example.net> for <bob@example.test>: ")
            && received.contains(" over TLSv1.3, saved as var/mailbox/1.eml"),
        "{received}"
    );
    let saved = std::fs::read_to_string(dir.join("var/mailbox/1.eml")).expect("saved message");
    assert!(saved.starts_with("Received: from "), "{saved}");
    relay.wait_for_log("\"delivered\"", 1);
}
