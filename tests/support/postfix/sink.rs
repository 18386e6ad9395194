//! `smtp-sink`, Postfix's test server, as a peer that a test owns.

use std::fs;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::{free_port, smtp_banner};
use super::{chown_postfix, preflight, read_files, set_mode, START_TIMEOUT};

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

/// `smtp-sink`: a Postfix test server that accepts all mail and writes each
/// message to a file; killed on drop.
#[derive(Debug)]
pub struct SmtpSink {
    dir: TempDir,
    port: u16,
    child: Child,
}

impl SmtpSink {
    /// Listens on a free port of 127.0.0.1, greeting as `hostname`. `extra`
    /// adds smtp-sink options (`-r MAIL` soft-rejects MAIL, `-Q DATA` …).
    pub fn start(hostname: &str, extra: &[&str]) -> SmtpSink {
        preflight();
        let dir = tempfile::Builder::new()
            .prefix("tlsrelay-sink.")
            .tempdir()
            .expect("create tempdir");
        set_mode(dir.path(), 0o755);
        fs::create_dir(dir.path().join("mail")).expect("create mail folder");
        chown_postfix(&dir.path().join("mail"));
        let port = free_port();
        let out = fs::File::create(dir.path().join("sink.out")).expect("create sink.out");
        let child = Command::new(SMTP_SINK)
            // Root must name a user to drop to once the socket is open.
            .args(["-u", "postfix", "-4", "-h", hostname, "-d"])
            .arg(dir.path().join("mail/msg."))
            .args(extra)
            .arg(format!("127.0.0.1:{port}"))
            .arg("100")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup sink.out"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SMTP_SINK}: {e}"));
        let mut sink = SmtpSink { dir, port, child };
        let deadline = Instant::now() + START_TIMEOUT;
        while smtp_banner(sink.addr()).is_none() {
            let exited = sink.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let out = fs::read_to_string(sink.dir.path().join("sink.out")).unwrap_or_default();
                panic!(
                    "smtp-sink did not start on {} ({exited:?}):\n{out}",
                    sink.addr()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        sink
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The messages received so far, each with smtp-sink's `X-Client-Addr`,
    /// `X-Mail-Args`, `X-Rcpt-Args` … lines in front.
    pub fn messages(&self) -> Vec<String> {
        read_files(&self.dir.path().join("mail"))
    }

    /// How many messages have arrived (or begun to): a folder listing,
    /// cheap enough to poll while thousands arrive.
    pub fn count(&self) -> usize {
        fs::read_dir(self.dir.path().join("mail")).map_or(0, |d| d.count())
    }

    /// Waits until at least `count` messages arrived; panics after `timeout`.
    pub fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            // A file appears at DATA; its message is complete once the
            // trailing empty line smtp-sink writes after the body is there.
            let messages = self.messages();
            if messages.iter().filter(|m| m.ends_with("\n\n")).count() >= count {
                return messages;
            }
            if Instant::now() > deadline {
                panic!(
                    "smtp-sink got {} of {count} messages in {timeout:?}",
                    messages.len()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
