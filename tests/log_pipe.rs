//! Logging never stops mail (DESIGN.md §7, issue 12 item 5): the real
//! `tlsrelay serve` with stdout and stderr in a pipe to a reader process
//! (`serve 2>&1 | cat`), and that reader killed in the middle of the load,
//! or stopped so that the pipe fills. Every client still gets its `250`,
//! the next hop still gets every message, the dropped lines are counted,
//! and SIGTERM still stops the relay with exit 0.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::receiver::Receiver;
use support::smtp::submit;

/// The relay and the process reading its log pipe.
struct Piped {
    relay: Child,
    reader: Child,
    _dir: tempfile::TempDir,
    smtp: SocketAddr,
    metrics: SocketAddr,
}

impl Piped {
    /// Starts `cat` and the relay (logging at `level`) with both its
    /// outputs into `cat`'s stdin; finds the listeners in what `cat`
    /// passes on.
    fn start(next_hop: SocketAddr, level: &str) -> Piped {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
             [relay]\naccepted_domains = [\"example.test\"]\n\
             [[outbound]]\nname = \"internal\"\nrecipient_domains = [\"example.test\"]\nsmarthosts = [\"{next_hop}\"]\ntls = \"none\"\n\
             [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n\
             [admin]\nmetrics_listen = \"127.0.0.1:0\"\n"
        );
        let path = dir.path().join("tlsrelay.toml");
        std::fs::write(&path, config).expect("write config");
        let mut reader = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start cat");
        let pipe = OwnedFd::from(reader.stdin.take().expect("cat stdin"));
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let out = reader.stdout.take().expect("cat stdout");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().expect("log lock").push(line);
            }
        });
        let relay = Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
            .args(["--log-format", "json", "--log-level", level, "serve", "-c"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(pipe.try_clone().expect("dup pipe")))
            .stderr(Stdio::from(pipe))
            .spawn()
            .expect("start tlsrelay serve");
        // The test keeps no end of the pipe: cat's stdin is the only reader.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (smtp, metrics) = loop {
            let found = |message: &str| {
                log.lock().expect("log lock").iter().find_map(|line| {
                    let event: serde_json::Value = serde_json::from_str(line).ok()?;
                    (event["fields"]["message"] == message)
                        .then(|| event["fields"]["address"].as_str()?.parse().ok())
                        .flatten()
                })
            };
            if let (Some(smtp), Some(metrics)) = (found("listening"), found("metrics listening")) {
                break (smtp, metrics);
            }
            assert!(
                Instant::now() < deadline,
                "no listeners in the log: {:?}",
                log.lock().expect("log lock")
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Piped {
            relay,
            reader,
            _dir: dir,
            smtp,
            metrics,
        }
    }

    /// Sends `kill -NAME` to a process this test started; true when it
    /// was there to get it.
    fn signal(pid: u32, name: &str) -> bool {
        Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `clients` clients at once, `each` messages each, every one of
    /// which must be answered `250` (`submit` checks it).
    fn load(&self, clients: usize, each: usize, tag: &str) {
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                let smtp = self.smtp;
                let tag = tag.to_string();
                std::thread::spawn(move || {
                    for m in 0..each {
                        let content = format!(
                            "Subject: {tag} {c}.{m}\r\n\r\nlogging must never stop mail\r\n"
                        );
                        submit(smtp, "alice@sender.test", &["bob@example.test"], &content);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("a client did not get its 250");
        }
    }

    /// `tlsrelay_log_lines_dropped_total` now.
    fn dropped(&self) -> f64 {
        let mut stream = TcpStream::connect(self.metrics).expect("connect to metrics");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        response
            .lines()
            .find_map(|l| l.strip_prefix("tlsrelay_log_lines_dropped_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no dropped-lines counter:\n{response}"))
    }

    /// SIGTERM; the exit status, which must come within `within`.
    fn terminate(&mut self, within: Duration) -> ExitStatus {
        assert!(Piped::signal(self.relay.id(), "TERM"), "the relay is gone");
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.relay.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the relay did not stop within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        let _ = self.relay.kill();
        let _ = self.relay.wait();
        Piped::signal(self.reader.id(), "CONT");
        let _ = self.reader.kill();
        let _ = self.reader.wait();
    }
}

#[test]
fn a_killed_log_reader_stops_no_mail_and_no_sigterm() {
    let receiver = Receiver::start("127.0.0.1:0".parse().expect("address"));
    let mut relay = Piped::start(receiver.addr, "info");
    relay.load(2, 3, "before");
    receiver.wait_delivered(6);
    // The reader is gone: every log write now fails with EPIPE.
    let _ = relay.reader.kill();
    let _ = relay.reader.wait();
    relay.load(8, 10, "after");
    receiver.wait_delivered(86);
    assert!(relay.dropped() > 0.0, "no log line was dropped");
    let status = relay.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit status {status}");
}

#[test]
fn a_stalled_log_reader_stops_no_mail_and_no_sigterm() {
    let receiver = Receiver::start("127.0.0.1:0".parse().expect("address"));
    let mut relay = Piped::start(receiver.addr, "info");
    relay.load(2, 3, "before");
    receiver.wait_delivered(6);
    // The reader stops reading: the pipe fills (64 KiB), then the relay's
    // queue of log lines (`QUEUE_LINES`, 2,048); 1,200 messages log
    // about 3,600.
    assert!(Piped::signal(relay.reader.id(), "STOP"));
    relay.load(8, 150, "after");
    receiver.wait_delivered(1206);
    assert!(relay.dropped() > 0.0, "the pipe never filled");
    let status = relay.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit status {status}");
}
