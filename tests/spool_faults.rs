//! The spool when it is not as the relay left it: unreadable files are
//! quarantined (never a crash loop), a spool that cannot be used stops
//! the start with a clear error. Disk full is in the real-peer suite (it
//! mounts a small tmpfs, which needs root).

mod support;

use support::receiver::Receiver;
use support::relay::{base_config, Relay};
use support::smtp::{assert_queued, Client};
use support::{stderr, tlsrelay};

#[test]
fn unreadable_spool_files_are_quarantined_and_the_relay_keeps_working() {
    let next_hop = Receiver::start("127.0.0.1:0".parse().expect("addr"));
    let config = base_config().replace("127.0.0.1:1", &next_hop.addr.to_string());
    let mut relay = Relay::start_with(&config);
    assert!(relay.terminate().success());

    let queue = relay.dir().join("spool/queue");
    let junk = [
        ("0000000000000000AA", &b"not a spool file at all\n"[..]),
        ("0000000000000000AB", b"tlsrelay-spool 1\n{\"sender\":"),
        (
            "0000000000000000AC",
            b"tlsrelay-spool 1\n{\"sender\": 7}\nSubject: x\r\n\r\n",
        ),
    ];
    for (id, bytes) in junk {
        std::fs::write(queue.join(id), bytes).expect("write junk");
    }
    relay.launch();
    let lines = relay.wait_for_log("moved to quarantine", junk.len());
    for (id, bytes) in junk {
        assert!(lines.iter().any(|l| l.contains(id)), "{id}: {lines:?}");
        let kept =
            std::fs::read(relay.dir().join("spool/quarantine").join(id)).expect("quarantined file");
        assert_eq!(kept, bytes, "{id} kept as it was");
        assert!(!queue.join(id).exists());
    }

    // Still takes and delivers mail, and a restart meets no junk again.
    let (mut client, _) = Client::connect(relay.smtp);
    client.command("EHLO client.test");
    assert_queued(&client.deliver(
        "alice@sender.test",
        &["bob@example.test"],
        "Subject: after\r\n\r\nhi\r\n",
    ));
    client.command("QUIT");
    next_hop.wait_delivered(1);
    relay.wait_spool_empty();
    assert!(relay.terminate().success());
    relay.launch();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        relay.wait_for_log("moved to quarantine", 0).len(),
        junk.len()
    );
}

#[test]
fn a_spool_that_cannot_be_a_folder_stops_the_start_with_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("spool"),
        "a file where the spool folder should be",
    )
    .expect("file");
    let config = dir.path().join("tlsrelay.toml");
    std::fs::write(&config, base_config()).expect("config");
    let out = tlsrelay(&["serve", "-c", support::arg(&config)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("tlsrelay.toml:4:13: server.spool_dir:")
            && err.contains("exists and is not a folder"),
        "{err}"
    );
}
