//! A next hop that offers REQUIRETLS (RFC 8689): Python's `ssl` and a
//! small SMTP server (`requiretls_receiver.py` beside this file) on
//! OpenSSL, since the Postfix here (3.7) does not offer it. It listens on
//! an address and port the test gives (the MX hosts of a lab share one
//! port), offers STARTTLS with a certificate the test made (or no
//! STARTTLS at all), lists REQUIRETLS after STARTTLS, never, or even in
//! plaintext, and records every connection: each command line before and
//! after STARTTLS, the handshake, the MAIL and RCPT lines of each
//! message and its content. The record is what the tests judge the relay
//! by: what reached the far side, and whether in the clear.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

/// When the EHLO reply lists REQUIRETLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// After STARTTLS only (RFC 8689 §4.1).
    AfterTls,
    Never,
    /// In plaintext too: a server whose word must not be trusted.
    Always,
}

impl Offer {
    fn word(self) -> &'static str {
        match self {
            Offer::AfterTls => "tls",
            Offer::Never => "never",
            Offer::Always => "always",
        }
    }
}

/// One message the receiver took.
#[derive(Clone, Debug, Default)]
pub struct Message {
    /// It came over TLS.
    pub tls: bool,
    /// The MAIL command line as it came.
    pub mail: String,
    /// The RCPT command lines, in order.
    pub rcpt: Vec<String>,
    /// The content, dot-unstuffed, CRLF line ends.
    pub data: String,
}

impl Message {
    /// The MAIL command carried the REQUIRETLS parameter.
    pub fn requiretls(&self) -> bool {
        mail_parameters(&self.mail)
            .iter()
            .any(|p| p.eq_ignore_ascii_case("REQUIRETLS"))
    }

    /// The reverse path, without brackets (empty for `<>`).
    pub fn sender(&self) -> String {
        path(&self.mail)
    }

    /// The forward paths, without brackets.
    pub fn recipients(&self) -> Vec<String> {
        self.rcpt.iter().map(|r| path(r)).collect()
    }
}

/// The parameters after the path of a MAIL or RCPT line.
pub fn mail_parameters(line: &str) -> Vec<String> {
    line.split_once('>')
        .map(|(_, rest)| rest.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// `MAIL FROM:<a@b> X` → `a@b`.
fn path(line: &str) -> String {
    line.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(path, _)| path.to_string())
        .unwrap_or_default()
}

/// One connection, as the receiver saw it.
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// Command lines before STARTTLS, as they came.
    pub plaintext: Vec<String>,
    /// Command lines over TLS.
    pub encrypted: Vec<String>,
    /// The TLS version of a completed handshake (`TLSv1.3`).
    pub tls: Option<String>,
    /// The server name the client asked for.
    pub sni: Option<String>,
    /// Why STARTTLS did not end in a session (the client's alert …).
    pub tls_failed: Option<String>,
    pub messages: Vec<Message>,
    pub closed: bool,
}

impl Session {
    /// The mail commands (MAIL, RCPT, DATA, BDAT) of the session, in
    /// plaintext or not.
    pub fn mail_commands(&self) -> Vec<String> {
        self.plaintext
            .iter()
            .chain(&self.encrypted)
            .filter(|l| is_mail_command(l))
            .cloned()
            .collect()
    }
}

/// MAIL, RCPT, DATA or BDAT: a line that carries the message or its
/// envelope.
pub fn is_mail_command(line: &str) -> bool {
    let verb = line.split(' ').next().unwrap_or_default();
    ["MAIL", "RCPT", "DATA", "BDAT"]
        .iter()
        .any(|v| verb.eq_ignore_ascii_case(v))
}

pub struct RequireTlsReceiver {
    pub addr: SocketAddr,
    child: Child,
    sessions: Arc<Mutex<Vec<Session>>>,
    _dir: tempfile::TempDir,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// How the receiver is started.
#[derive(Clone, Debug)]
pub struct Options {
    /// Certificate chain (leaf first) and key, PEM: STARTTLS is offered
    /// with them; `None`: no STARTTLS.
    pub tls: Option<(String, String)>,
    pub offer: Offer,
}

impl RequireTlsReceiver {
    /// Listens on `ip`:`port` (0: any port).
    pub fn start(ip: &str, port: u16, options: &Options) -> RequireTlsReceiver {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write receiver file");
            path
        };
        let script = file(
            "requiretls_receiver.py",
            include_str!("requiretls_receiver.py"),
        );
        let (chain, key) = options.tls.clone().unwrap_or_default();
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(&script)
            .args([ip, &port.to_string()])
            .arg(file("cert.pem", &chain))
            .arg(file("key.pem", &key))
            .arg(if options.tls.is_some() { "yes" } else { "no" })
            .arg(options.offer.word())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run python3 requiretls_receiver.py");
        let stdout = child.stdout.take().expect("stdout");
        let sessions: Arc<Mutex<Vec<Session>>> = Arc::default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let record = sessions.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("READY ") {
                    let _ = ready_tx.send(port.trim().parse::<u16>().unwrap_or(0));
                } else if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    apply(&mut lock(&record), &event);
                }
            }
        });
        let port = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("requiretls receiver on {ip} not READY within 20 s: {e}"));
        assert!(port != 0, "requiretls receiver printed no port");
        RequireTlsReceiver {
            addr: SocketAddr::new(ip.parse().expect("receiver ip"), port),
            child,
            sessions,
            _dir: dir,
        }
    }

    pub fn sessions(&self) -> Vec<Session> {
        lock(&self.sessions).clone()
    }

    pub fn connections(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Every message taken, in order.
    pub fn messages(&self) -> Vec<Message> {
        self.sessions()
            .into_iter()
            .flat_map(|s| s.messages)
            .collect()
    }

    /// Every connection so far has closed: its record is complete.
    pub fn all_closed(&self) -> bool {
        lock(&self.sessions).iter().all(|s| s.closed)
    }

    /// Waits (bounded, 30 s) for `n` messages; all of them.
    pub fn wait_messages(&self, n: usize) -> Vec<Message> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{} took {} messages, not {n}: {:#?}",
                self.addr,
                messages.len(),
                self.sessions()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Adds one event of the script to the record.
fn apply(sessions: &mut Vec<Session>, event: &Value) {
    let Some(index) = event["c"].as_u64().and_then(|c| usize::try_from(c).ok()) else {
        return;
    };
    if sessions.len() <= index {
        sessions.resize_with(index + 1, Session::default);
    }
    let session = &mut sessions[index];
    let text = |key: &str| event[key].as_str().map(str::to_string);
    match event["e"].as_str() {
        Some("line") => {
            let line = text("text").unwrap_or_default();
            match event["tls"].as_bool() {
                Some(true) => session.encrypted.push(line),
                _ => session.plaintext.push(line),
            }
        }
        Some("tls") => {
            session.tls = text("version");
            session.sni = text("sni");
        }
        Some("tls-failed") => session.tls_failed = text("error"),
        Some("message") => session.messages.push(Message {
            tls: event["tls"].as_bool().unwrap_or(false),
            mail: text("mail").unwrap_or_default(),
            rcpt: event["rcpt"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect(),
            data: text("data").unwrap_or_default(),
        }),
        Some("close") => session.closed = true,
        _ => {}
    }
}

impl Drop for RequireTlsReceiver {
    fn drop(&mut self) {
        // Our child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
