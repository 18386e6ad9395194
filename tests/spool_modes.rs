//! The spool is the relay user's alone (DESIGN.md §6): every folder 0700
//! and every file 0600 whatever the umask, and what is found wider at
//! start is narrowed, with one log line saying so.

mod support;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use support::dns::{DnsServer, MAIL_AND_SENDER_ZONE};
use support::receiver::Receiver;
use support::relay::{mx_config, Relay};
use support::smtp::submit;

const SENDER: &str = "alice@sender.test";

/// Every entry under `dir`, `dir` included, with its permission bits;
/// symbolic links are reported as such (none should be there).
fn modes(dir: &Path) -> Vec<(PathBuf, &'static str, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let metadata = std::fs::symlink_metadata(&path).expect("lstat");
        let kind = metadata.file_type();
        let name = if kind.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir").flatten() {
                stack.push(entry.path());
            }
            "folder"
        } else if kind.is_file() {
            "file"
        } else if kind.is_socket() {
            "socket"
        } else {
            "other"
        };
        out.push((path, name, metadata.permissions().mode() & 0o7777));
    }
    out
}

/// The entries that are not 0700 folders or 0600 files and sockets.
fn too_open(dir: &Path) -> Vec<String> {
    modes(dir)
        .into_iter()
        .filter(|(_, kind, mode)| match *kind {
            "folder" => *mode != 0o700,
            "file" | "socket" => *mode != 0o600,
            _ => true,
        })
        .map(|(path, kind, mode)| format!("{kind} {} {mode:04o}", path.display()))
        .collect()
}

fn message(subject: &str, body_bytes: usize) -> String {
    let line = "x".repeat(76);
    let mut body = String::new();
    while body.len() < body_bytes {
        body.push_str(&line);
        body.push_str("\r\n");
    }
    format!("From: {SENDER}\r\nSubject: {subject}\r\n\r\n{body}")
}

/// Accepts, delivers, defers, bounces and quarantines mail with the relay
/// under `umask`; then nothing under the spool may be readable by others.
fn run_under_umask(umask: u32) {
    let dns = DnsServer::start(MAIL_AND_SENDER_ZONE);
    let mut hosts = Receiver::on_one_port(&["127.0.0.2", "127.0.0.4"]);
    let sender_mx = hosts.pop().expect("sender MX");
    let next_hop = hosts.pop().expect("next hop");
    next_hop.on_rcpt("carol@b.test", &["451 4.2.0 try later"]);
    next_hop.on_rcpt("dave@b.test", &["550 5.1.1 no such user"]);
    let config = mx_config(next_hop.addr.port(), dns.addr);
    let mut relay = Relay::start_with_umask(&config, umask);

    // Small (kept in memory until commit) and large (written to a .tmp
    // file as it arrives) messages; bob's are delivered, carol's deferred,
    // dave's bounced to the sender's MX host.
    submit(
        relay.smtp,
        SENDER,
        &["bob@b.test", "carol@b.test", "dave@b.test"],
        &message("small", 100),
    );
    submit(
        relay.smtp,
        SENDER,
        &["bob@b.test"],
        &message("large", 600_000),
    );
    next_hop.wait_delivered(2);
    sender_mx.wait_delivered(1);
    // Spare files are reused by the next message.
    submit(relay.smtp, SENDER, &["bob@b.test"], &message("again", 100));
    next_hop.wait_delivered(3);
    let spooled = relay.wait_for_spooled(1);
    assert_eq!(spooled.len(), 1, "carol's message waits");
    let id = spooled[0].0.clone();
    relay.wait_for_state(&id, "a deferral", |s| s.attempts >= 1);
    assert!(relay.terminate().success());

    // A file in queue/ that is no message goes to quarantine at start.
    let junk = relay.dir().join("spool/queue/0000000000000000AA");
    std::fs::write(&junk, "not a spool file\n").expect("junk");
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    relay.launch();
    relay.wait_for_log("moved to quarantine", 1);
    submit(relay.smtp, SENDER, &["bob@b.test"], &message("last", 100));
    next_hop.wait_delivered(4);

    let spool = relay.dir().join("spool");
    for folder in ["queue", "segments", "spare", "quarantine"] {
        assert!(spool.join(folder).is_dir(), "{folder} was used");
    }
    assert!(spool.join("control.sock").exists());
    assert_eq!(too_open(&spool), Vec::<String>::new(), "umask {umask:03o}");
    assert!(
        !relay.log().contains("spool modes fixed"),
        "the relay made nothing it had to fix:\n{}",
        relay.log()
    );
}

#[test]
fn every_spool_file_is_private_under_umask_022() {
    run_under_umask(0o022);
}

#[test]
fn every_spool_file_is_private_under_umask_000() {
    run_under_umask(0o000);
}

#[test]
fn a_spool_left_readable_is_fixed_at_start_with_one_log_line() {
    let dns = DnsServer::start(MAIL_AND_SENDER_ZONE);
    let next_hop = Receiver::start("127.0.0.2:0".parse().expect("addr"));
    next_hop.on_rcpt("*", &["451 4.2.0 try later"]);
    let config = mx_config(next_hop.addr.port(), dns.addr);
    let mut relay = Relay::start_with(&config);
    submit(relay.smtp, SENDER, &["bob@b.test"], &message("kept", 100));
    let id = relay.wait_for_spooled(1)[0].0.clone();
    relay.wait_for_state(&id, "a deferral", |s| s.attempts >= 1);
    assert!(relay.terminate().success());

    // As an older version left it under umask 022, and a file of its own.
    let spool = relay.dir().join("spool");
    let widen = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    widen(&spool, 0o755);
    widen(&spool.join("queue"), 0o755);
    let segment = std::fs::read_dir(spool.join("segments"))
        .expect("segments folder")
        .flatten()
        .map(|e| e.path())
        .next()
        .expect("the message's segment");
    widen(&segment, 0o644);
    widen(&spool.join("lock"), 0o644);
    std::fs::create_dir(spool.join("quarantine")).expect("mkdir");
    widen(&spool.join("quarantine"), 0o755);
    std::fs::write(spool.join("quarantine/OLD"), "old").expect("write");
    widen(&spool.join("quarantine/OLD"), 0o604);
    let wide = too_open(&spool).len();
    assert_eq!(wide, 6, "{:?}", too_open(&spool));

    relay.launch();
    let lines = relay.wait_for_log("spool modes fixed", 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let event: serde_json::Value = serde_json::from_str(&lines[0]).expect("json log line");
    let fields = &event["fields"];
    assert_eq!(event["level"], "WARN", "{event}");
    assert_eq!(fields["fixed"], 6, "{event}");
    assert_eq!(fields["not_fixed"], 0, "{event}");
    let examples = fields["examples"].as_str().unwrap_or_default();
    assert!(examples.contains(" 0755"), "{examples}");
    assert_eq!(too_open(&spool), Vec::<String>::new());
    // The message is still there and still tried.
    relay.wait_for_state(&id, "another attempt", |s| s.attempts >= 2);
}
