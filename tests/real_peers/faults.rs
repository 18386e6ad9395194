//! Disk faults on a real, small filesystem: a tmpfs the test mounts (as
//! root, which is why this sits in the real-peer suite) under the spool.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::postfix::run_bounded;
use crate::support::relay::{base_config, Relay};
use crate::support::smtp::{assert_queued, Client};
use crate::support::{arg, stderr, tlsrelay};

/// A tmpfs mounted at `path` for the test's lifetime.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(path: &Path, options: &str) -> Mount {
        std::fs::create_dir_all(path).expect("mount point");
        let out = run_bounded(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", options, "tmpfs"])
                .arg(path),
            Duration::from_secs(10),
        );
        assert!(out.status.success(), "mount tmpfs ({options}): {out:?}");
        Mount(path.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = run_bounded(Command::new("umount").arg(&self.0), Duration::from_secs(10));
    }
}

/// The committed messages in the spool at `spool` (the tmpfs, not the relay's folder).
fn committed(spool: &Path) -> usize {
    tlsrelay::queue::spool::SpoolView::open(spool)
        .and_then(|view| view.ids())
        .expect("the spool's messages")
        .len()
}

fn message(size: usize) -> String {
    let line = "x".repeat(998);
    let mut body = String::from("Subject: big\r\n\r\n");
    while body.len() < size {
        body.push_str(&line);
        body.push_str("\r\n");
    }
    body
}

#[test]
#[ignore = "real peer: run by .ci/run (mounts a tmpfs, needs root)"]
fn disk_full_during_data_answers_452_and_keeps_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = dir.path().join("spool");
    let _mount = Mount::tmpfs(&spool, "size=2m");
    let config = base_config()
        .replace(
            "spool_dir = \"spool\"",
            &format!("spool_dir = \"{}\"", arg(&spool)),
        )
        .replace("[server]\n", "[server]\nmax_message_size = \"20MiB\"\n");
    let relay = Relay::start_with(&config);
    let (mut client, _) = Client::connect(relay.smtp);
    client.command("EHLO client.test");

    // Bigger than the filesystem: written to the .tmp file as it arrives, which fails.
    let reply = client.deliver(
        "alice@sender.test",
        &["bob@example.test"],
        &message(3 << 20),
    );
    assert!(reply.starts_with("452 4.3.1"), "{reply}\n{}", relay.log());
    // Small enough to fit: the disk is usable again, nothing of the first is left.
    assert_queued(&client.deliver("alice@sender.test", &["bob@example.test"], &message(10_000)));
    assert_eq!(committed(&spool), 1);
    let leftovers: Vec<_> = std::fs::read_dir(spool.join("queue"))
        .expect("queue")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Now full to the last byte: even a small message cannot be committed.
    let filler = spool.join("filler");
    let _ = run_bounded(
        Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", arg(&filler))),
        Duration::from_secs(30),
    );
    let reply = client.deliver("alice@sender.test", &["bob@example.test"], &message(2_000));
    assert!(reply.starts_with("452 4.3.1"), "{reply}\n{}", relay.log());
    assert_eq!(committed(&spool), 1, "no second message kept");
    std::fs::remove_file(&filler).expect("remove filler");
    assert_queued(&client.deliver("alice@sender.test", &["bob@example.test"], &message(2_000)));
    client.command("QUIT");
    assert_eq!(committed(&spool), 2);
}

#[test]
#[ignore = "real peer: run by .ci/run (mounts a tmpfs, needs root)"]
fn a_read_only_spool_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = dir.path().join("spool");
    let _mount = Mount::tmpfs(&spool, "size=1m,ro");
    let config_path = dir.path().join("tlsrelay.toml");
    let config = base_config().replace(
        "spool_dir = \"spool\"",
        &format!("spool_dir = \"{}\"", arg(&spool)),
    );
    std::fs::write(&config_path, config).expect("config");
    let out = tlsrelay(&["serve", "-c", arg(&config_path)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("spool folder") && err.contains("Read-only file system"),
        "{err}"
    );
}
