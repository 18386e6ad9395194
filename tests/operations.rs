//! Running as a service (DESIGN.md §7): sd_notify around start, reload and
//! stop; SIGHUP swaps certificates for new sessions, keeps the old ones on
//! a broken file, and lets a session opened before it finish its message.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::ca::{Key, Spec, TestCa};
use support::postfix::run_bounded;
use support::relay::{base_config, Relay};
use support::smtp::{assert_queued, Client};
use support::{arg, openssl_fingerprint};

/// The datagrams the relay sent to our NOTIFY_SOCKET, in order, until
/// `last` arrives (bounded).
fn notifications_until(socket: &UnixDatagram, last: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 512];
    loop {
        let n = socket
            .recv(&mut buffer)
            .unwrap_or_else(|e| panic!("no notification after {seen:?}: {e}"));
        let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
        let done = message.starts_with(last);
        seen.push(message);
        if done {
            return seen;
        }
    }
}

/// A socket standing in for systemd's NOTIFY_SOCKET (in its own folder,
/// kept while the test runs), reads bounded to 20 s.
fn notify_socket() -> (tempfile::TempDir, std::path::PathBuf, UnixDatagram) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    (dir, path, socket)
}

#[test]
fn sd_notify_ready_reloading_ready_stopping() {
    let (_dir, path, socket) = notify_socket();
    let mut relay = Relay::start_with_env(&base_config(), &[], &[("NOTIFY_SOCKET", arg(&path))]);
    assert_eq!(notifications_until(&socket, "READY=1"), ["READY=1"]);

    relay.sighup();
    let reload = notifications_until(&socket, "READY=1");
    assert_eq!(reload.len(), 2, "{reload:?}");
    let (state, usec) = reload[0].split_once('\n').expect("two lines");
    assert_eq!(state, "RELOADING=1");
    let usec: u64 = usec
        .strip_prefix("MONOTONIC_USEC=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("MONOTONIC_USEC in {:?}", reload[0]));
    assert!(usec > 0);
    relay.wait_for_log("configuration reloaded", 1);

    relay.sigterm();
    assert_eq!(notifications_until(&socket, "STOPPING=1"), ["STOPPING=1"]);
    assert!(relay.wait_exit().success());
}

#[test]
fn the_watchdog_is_fed_at_half_its_timeout() {
    let (_dir, path, socket) = notify_socket();
    let env = [("NOTIFY_SOCKET", arg(&path)), ("WATCHDOG_USEC", "400000")];
    let _relay = Relay::start_with_env(&base_config(), &[], &env);
    assert_eq!(notifications_until(&socket, "READY=1"), ["READY=1"]);
    // Every 200 ms; without them the 20 s read timeout fails the test.
    for _ in 0..3 {
        assert_eq!(notifications_until(&socket, "WATCHDOG=1"), ["WATCHDOG=1"]);
    }
}

/// The certificate a fresh STARTTLS session is shown, per `openssl s_client`.
fn served_fingerprint(relay: &Relay, scratch: &Path) -> String {
    let output = run_bounded(
        Command::new("/usr/bin/openssl")
            .args(["s_client", "-starttls", "smtp", "-connect"])
            .arg(relay.smtp.to_string())
            .args(["-servername", "relay.example.test"]),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate from s_client: {output:?}"));
    let end = text[begin..]
        .find("-----END CERTIFICATE-----")
        .map(|e| begin + e + "-----END CERTIFICATE-----".len())
        .expect("end of certificate");
    let file = scratch.join("served.pem");
    std::fs::write(&file, format!("{}\n", &text[begin..end])).expect("write served.pem");
    openssl_fingerprint(&file)
}

#[test]
fn sighup_rotates_the_certificate_for_new_sessions_only_and_keeps_it_on_a_broken_file() {
    let ca = TestCa::root("rotation test CA", Key::P256);
    let first = ca.leaf(&Spec::new(&["relay.example.test"], Key::P256));
    let second = ca.leaf(&Spec::new(&["relay.example.test"], Key::P384));
    let config = base_config().replace("generate_if_missing = true\n", "");
    let relay = Relay::start_with_files(
        &config,
        &[
            ("relay.crt", &first.cert_pem),
            ("relay.key", &first.key_pem),
        ],
    );
    let scratch = tempfile::tempdir().expect("tempdir");
    let first_fp = openssl_fingerprint(&relay.cert_path());
    assert_eq!(served_fingerprint(&relay, scratch.path()), first_fp);

    // A session that starts before the reload, mid-transaction when it happens.
    let (mut early, _) = Client::connect(relay.smtp);
    early.command("EHLO early.test");
    early.start_data("alice@sender.test", &["bob@example.test"]);
    early.send(b"Subject: begun before the reload\r\n\r\nfirst half\r\n");

    std::fs::write(relay.dir().join("relay.crt"), &second.cert_pem).expect("new cert");
    std::fs::write(relay.dir().join("relay.key"), &second.key_pem).expect("new key");
    relay.sighup();
    relay.wait_for_log("configuration reloaded", 1);
    let second_fp = openssl_fingerprint(&relay.dir().join("relay.crt"));
    assert_ne!(first_fp, second_fp);
    assert_eq!(served_fingerprint(&relay, scratch.path()), second_fp);

    early.send(b"second half\r\n.\r\n");
    assert_queued(&early.reply());
    early.command("QUIT");

    // A broken certificate: the one in force stays, the log says why.
    std::fs::write(relay.dir().join("relay.crt"), "not a certificate\n").expect("break cert");
    relay.sighup();
    let failure = relay.wait_for_log("reload failed", 1);
    assert!(
        failure.iter().any(|l| l.contains("relay.crt")),
        "the failure names the file: {failure:?}"
    );
    assert_eq!(served_fingerprint(&relay, scratch.path()), second_fp);
    // And the relay still takes mail.
    let (mut late, _) = Client::connect(relay.smtp);
    late.command("EHLO late.test");
    assert_queued(&late.deliver(
        "alice@sender.test",
        &["bob@example.test"],
        "Subject: late\r\n\r\nhi\r\n",
    ));
    late.command("QUIT");
    assert_eq!(relay.spooled().len(), 2);
}

#[test]
fn sighup_swaps_connectors_and_a_broken_config_changes_nothing() {
    // Before: 10.0.0.0/8 may relay, so 127.0.0.1 is anonymous and refused.
    let lan = |cidr: &str| {
        format!("[[inbound]]\nname = \"lan\"\nremote_ips = [\"{cidr}\"]\nallow_relay = true\n")
    };
    let relay = Relay::start(&lan("10.0.0.0/8"));
    let relay_to_far = |relay: &Relay| {
        let (mut client, _) = Client::connect(relay.smtp);
        client.command("EHLO client.test");
        client.command("MAIL FROM:<alice@sender.test>");
        let reply = client.command("RCPT TO:<carol@far.test>");
        client.command("QUIT");
        reply
    };
    assert!(relay_to_far(&relay).starts_with("550 5.7.1"));

    let config = relay.dir().join("tlsrelay.toml");
    std::fs::write(&config, format!("{}{}", base_config(), lan("127.0.0.0/8"))).expect("config");
    relay.sighup();
    relay.wait_for_log("configuration reloaded", 1);
    assert!(relay_to_far(&relay).starts_with("250"));

    // A typo: the reload fails with file:line:col, and the relay keeps going as it was.
    std::fs::write(
        &config,
        format!("{}{}allow_relya = true\n", base_config(), lan("10.0.0.0/8")),
    )
    .expect("config");
    relay.sighup();
    let failure = relay.wait_for_log("reload failed", 1);
    assert!(
        failure
            .iter()
            .any(|l| l.contains("tlsrelay.toml:") && l.contains("allow_relya")),
        "{failure:?}"
    );
    assert!(relay_to_far(&relay).starts_with("250"));

    // Listener changes need a restart, and the log says so.
    std::fs::write(
        &config,
        format!("{}{}", base_config(), lan("127.0.0.0/8"))
            .replace("spool_dir = \"spool\"", "spool_dir = \"elsewhere\""),
    )
    .expect("config");
    relay.sighup();
    relay.wait_for_log("configuration reloaded", 2);
    let warning = relay.wait_for_log("changes only with a restart", 1);
    assert!(
        warning.iter().any(|l| l.contains("server.spool_dir")),
        "{warning:?}"
    );

    // A second refused change: the value in force is still the one bound
    // at start, never the first refused one.
    std::fs::write(
        &config,
        format!("{}{}", base_config(), lan("127.0.0.0/8"))
            .replace("spool_dir = \"spool\"", "spool_dir = \"third\""),
    )
    .expect("config");
    relay.sighup();
    relay.wait_for_log("configuration reloaded", 3);
    let warning = relay.wait_for_log("changes only with a restart", 2);
    let last = warning.last().expect("a second warning");
    assert!(
        last.contains("server.spool_dir") && last.contains("third") && !last.contains("elsewhere"),
        "{last}"
    );
}

/// One client of the SIGTERM test: what it was told, line by line; `None`
/// where the connection closed while a reply was owed.
fn transaction_through_sigterm(
    addr: std::net::SocketAddr,
    i: usize,
    barrier: &std::sync::Barrier,
) -> Vec<Option<String>> {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut replies = Vec::new();
    let reply = |reader: &mut BufReader<std::net::TcpStream>| {
        // The last line of a possibly multi-line reply.
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(n) if n > 0 && line.ends_with("\r\n") => {
                    if line.as_bytes().get(3) != Some(&b'-') {
                        return Some(line);
                    }
                }
                _ => return None,
            }
        }
    };
    let mut say = |reader: &mut BufReader<_>, line: &str| {
        writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        reply(reader)
    };
    replies.push(reply(&mut reader));
    replies.push(say(&mut reader, "EHLO client.test"));
    let in_data = i.is_multiple_of(2);
    if in_data {
        replies.push(say(&mut reader, "MAIL FROM:<alice@sender.test>"));
        replies.push(say(&mut reader, "RCPT TO:<bob@far.test>"));
        replies.push(say(&mut reader, "DATA"));
        say_raw(&reader, &format!("Subject: m{i}\r\n\r\nfirst half\r\n"));
    }
    // Once everyone is in place, and again once the relay began to stop.
    barrier.wait();
    barrier.wait();
    std::thread::sleep(Duration::from_millis(20 * (i % 5) as u64));
    if in_data {
        replies.push(say(&mut reader, "second half\r\n."));
    }
    // After the stop began, a new command is answered 421.
    replies.push(say(&mut reader, "MAIL FROM:<alice@sender.test>"));
    replies
}

fn say_raw(reader: &std::io::BufReader<std::net::TcpStream>, text: &str) {
    use std::io::Write;
    reader
        .get_ref()
        .write_all(text.as_bytes())
        .expect("write content");
}

#[test]
fn sigterm_during_50_transactions_answers_every_client_and_loses_no_acknowledged_message() {
    use support::receiver::Receiver;
    let next_hop = Receiver::start("127.0.0.1:0".parse().expect("addr"));
    next_hop.on_rcpt("*", &["451 4.3.2 not yet"]);
    let config = format!(
        "{}[[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [[outbound]]\nname = \"hop\"\nrecipient_domains = [\"far.test\"]\nsmarthosts = [\"{}\"]\ntls = \"none\"\n\
         [queue]\nretry_intervals = [\"1s\"]\n",
        base_config(),
        next_hop.addr
    );
    let mut relay = Relay::start_with(&config);
    let clients = 50;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (addr, barrier) = (relay.smtp, barrier.clone());
            std::thread::spawn(move || transaction_through_sigterm(addr, i, &barrier))
        })
        .collect();
    barrier.wait();
    relay.sigterm();
    relay.wait_for_log("SIGTERM: stopping", 1);
    std::thread::sleep(Duration::from_millis(100));
    barrier.wait();
    let mut acknowledged = Vec::new();
    for (i, thread) in threads.into_iter().enumerate() {
        let replies = thread.join().expect("client thread");
        assert!(
            replies.iter().all(Option::is_some),
            "client {i} lost its connection while a reply was owed: {replies:?}"
        );
        let last = replies.last().cloned().flatten().unwrap_or_default();
        assert!(last.starts_with("421 4.3.2"), "client {i}: {replies:?}");
        if i.is_multiple_of(2) {
            let data_reply = replies[replies.len() - 2].clone().unwrap_or_default();
            assert!(
                data_reply.starts_with("250"),
                "client {i}: in-flight DATA finishes: {replies:?}"
            );
            acknowledged.push(format!("Subject: m{i}"));
        }
    }
    assert!(relay.wait_exit().success(), "{}", relay.log());
    assert_eq!(acknowledged.len(), clients / 2);

    // After the restart every acknowledged message reaches the next hop.
    next_hop.on_rcpt("*", &["250 2.1.5 ok"]);
    relay.launch();
    let delivered = next_hop.wait_delivered(acknowledged.len());
    for subject in &acknowledged {
        assert!(
            delivered
                .iter()
                .any(|t| t.content().contains(subject.as_str())),
            "{subject} not delivered"
        );
    }
    relay.wait_spool_empty();
}
