//! A scripted SMTP receiver on std threads: the next hop a test owns.
//!
//! It listens on a loopback address the test chooses (MX hosts are
//! 127.0.0.2, 127.0.0.3 … on one port), answers MAIL, each RCPT and the
//! end of DATA as the test scripted ("451 the first time, then 250"),
//! records every transaction as it saw it (envelope, dot-unstuffed
//! content, the replies it gave), and can be stopped and started again on
//! the same address, so a host is "down" and later "up". Plaintext only,
//! with PIPELINING (RFC 2920) and SMTPUTF8 (RFC 6531, for internationalised
//! addresses): the relay's opportunistic TLS falls back to
//! plaintext when STARTTLS is not offered. CHUNKING (RFC 3030) when the
//! test asks for it ([`Receiver::offer_chunking`]).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One MAIL transaction, as the receiver saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transaction {
    /// Which connection (0-based, in accept order) carried it.
    pub connection: usize,
    /// The reverse path without brackets; empty for `<>`.
    pub mail_from: String,
    /// Recipients given a 2xx, in RCPT order.
    pub rcpt_to: Vec<String>,
    /// Recipients refused, with the reply they got.
    pub refused: Vec<(String, String)>,
    /// The content, dot-unstuffed, when DATA got as far as the end marker.
    pub data: Option<Vec<u8>>,
    /// The reply to the end of DATA (or to the `LAST` BDAT chunk).
    pub data_reply: Option<String>,
    /// The content came by BDAT chunks, not DATA.
    pub bdat: bool,
}

impl Transaction {
    /// True when the receiver took responsibility for the message.
    pub fn delivered(&self) -> bool {
        self.data_reply
            .as_deref()
            .is_some_and(|r| r.starts_with('2'))
    }

    pub fn content(&self) -> String {
        String::from_utf8_lossy(self.data.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Everything the receiver saw since it was created (across restarts).
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub connections: usize,
    pub transactions: Vec<Transaction>,
}

impl Seen {
    /// The transactions the receiver accepted with 2xx after DATA.
    pub fn delivered(&self) -> Vec<&Transaction> {
        self.transactions.iter().filter(|t| t.delivered()).collect()
    }
}

/// Replies used in turn; the last one repeats. Empty: the default.
#[derive(Default)]
struct Replies {
    lines: Vec<String>,
    used: usize,
}

impl Replies {
    fn next(&mut self, default: &str) -> String {
        let reply = self
            .lines
            .get(self.used)
            .or(self.lines.last())
            .map_or(default, String::as_str)
            .to_string();
        self.used += 1;
        reply
    }
}

#[derive(Default)]
struct Script {
    mail: Replies,
    /// By lowercase address, `*` for every other recipient.
    rcpt: HashMap<String, Replies>,
    data: Replies,
    /// EHLO offers CHUNKING and BDAT is taken.
    chunking: bool,
}

impl Script {
    fn rcpt(&mut self, address: &str) -> String {
        let key = address.to_ascii_lowercase();
        let key = match self.rcpt.contains_key(&key) {
            true => key,
            false => "*".to_string(),
        };
        match self.rcpt.get_mut(&key) {
            Some(replies) => replies.next("250 2.1.5 ok"),
            None => "250 2.1.5 ok".to_string(),
        }
    }
}

/// The accept loop and the open connections of a running receiver.
struct Running {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    seen: Arc<Mutex<Seen>>,
    running: Option<Running>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Receiver {
    /// A receiver listening on `addr` (port 0 picks one), answering 250 to
    /// everything until scripted otherwise.
    pub fn start(addr: SocketAddr) -> Receiver {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        Receiver::on(listener)
    }

    /// Receivers on each of `ips`, all on one port (the relay has one
    /// `mx_port`): see [`listeners_on_one_port`].
    pub fn on_one_port(ips: &[&str]) -> Vec<Receiver> {
        let listeners = listeners_on_one_port(ips);
        listeners.into_iter().map(Receiver::on).collect()
    }

    /// A receiver on a listener the test bound.
    pub fn on(listener: TcpListener) -> Receiver {
        let addr = listener.local_addr().expect("local_addr");
        let mut receiver = Receiver {
            addr,
            script: Arc::default(),
            seen: Arc::default(),
            running: None,
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&mut self, listener: TcpListener) {
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (script, seen) = (self.script.clone(), self.seen.clone());
        let (flag, open) = (stop.clone(), streams.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => continue,
                };
                let _ = stream.set_nonblocking(false);
                if let Ok(clone) = stream.try_clone() {
                    lock(&open).push(clone);
                }
                let connection = {
                    let mut seen = lock(&seen);
                    seen.connections += 1;
                    seen.connections - 1
                };
                let (script, seen) = (script.clone(), seen.clone());
                std::thread::spawn(move || converse(stream, connection, &script, &seen));
            }
        });
        self.running = Some(Running {
            stop,
            thread,
            streams,
        });
    }

    /// Down: the listener closes (connections are refused) and every open
    /// connection is cut, also one the relay keeps idle for reuse.
    pub fn stop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        running.stop.store(true, Ordering::SeqCst);
        let _ = running.thread.join();
        for stream in lock(&running.streams).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Up again on the same address, with the same script and record.
    pub fn restart(&mut self) {
        if self.running.is_some() {
            return;
        }
        let listener =
            TcpListener::bind(self.addr).unwrap_or_else(|e| panic!("rebind {}: {e}", self.addr));
        self.serve(listener);
    }

    /// Replies to MAIL FROM, in turn (the last repeats); default 250.
    pub fn on_mail(&self, replies: &[&str]) -> &Self {
        lock(&self.script).mail = replies_of(replies);
        self
    }

    /// Replies to RCPT TO for `address` (`*`: any other), in turn.
    pub fn on_rcpt(&self, address: &str, replies: &[&str]) -> &Self {
        lock(&self.script)
            .rcpt
            .insert(address.to_ascii_lowercase(), replies_of(replies));
        self
    }

    /// Offer CHUNKING from the next EHLO on: BDAT chunks are taken, the
    /// `LAST` one answered as the end of DATA is.
    pub fn offer_chunking(&self) -> &Self {
        lock(&self.script).chunking = true;
        self
    }

    /// Replies to the end of DATA, in turn; default 250.
    pub fn on_data(&self, replies: &[&str]) -> &Self {
        lock(&self.script).data = replies_of(replies);
        self
    }

    pub fn seen(&self) -> Seen {
        lock(&self.seen).clone()
    }

    /// Waits (bounded, 20 s) until `done` holds for what was seen.
    pub fn wait_until(&self, what: &str, done: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = self.seen();
            if done(&seen) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{} never saw {what}: {seen:#?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) for `n` accepted messages; returns them.
    pub fn wait_delivered(&self, n: usize) -> Vec<Transaction> {
        let seen = self.wait_until(&format!("{n} delivered message(s)"), |s| {
            s.delivered().len() >= n
        });
        seen.delivered().into_iter().cloned().collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn replies_of(replies: &[&str]) -> Replies {
    Replies {
        lines: replies.iter().map(|r| r.to_string()).collect(),
        used: 0,
    }
}

/// One SMTP session (RFC 5321 §4.1), answering line by line, which is
/// also what pipelined commands need (RFC 2920 §3: replies in order).
fn converse(stream: TcpStream, connection: usize, script: &Mutex<Script>, seen: &Mutex<Seen>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = stream;
    let mut say = |text: &str| out.write_all(format!("{text}\r\n").as_bytes()).is_ok();
    if !say("220 receiver.test ESMTP scripted") {
        return;
    }
    let mut current: Option<Transaction> = None;
    // BDAT chunks of the current transaction so far.
    let mut chunks = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = text.to_ascii_uppercase();
        if !upper.starts_with("BDAT ") {
            chunks.clear();
        }
        let chunking = lock(script).chunking;
        let reply = if upper.starts_with("EHLO") {
            current = None;
            let offer = if chunking { "250-CHUNKING\r\n" } else { "" };
            format!("250-receiver.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n{offer}250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES")
        } else if upper.starts_with("HELO") {
            current = None;
            "250 receiver.test".into()
        } else if upper.starts_with("MAIL FROM:") {
            let reply = lock(script).mail.next("250 2.1.0 ok");
            current = reply.starts_with('2').then(|| Transaction {
                connection,
                mail_from: path(&text["MAIL FROM:".len()..]),
                ..Transaction::default()
            });
            reply
        } else if upper.starts_with("RCPT TO:") {
            match current.as_mut() {
                None => "503 5.5.1 MAIL first".into(),
                Some(transaction) => {
                    let address = path(&text["RCPT TO:".len()..]);
                    let reply = lock(script).rcpt(&address);
                    match reply.starts_with('2') {
                        true => transaction.rcpt_to.push(address),
                        false => transaction.refused.push((address, reply.clone())),
                    }
                    reply
                }
            }
        } else if upper == "DATA" {
            match current.take() {
                Some(transaction) if !transaction.rcpt_to.is_empty() => {
                    if !say("354 go ahead") {
                        return;
                    }
                    let Some(content) = read_content(&mut reader) else {
                        return;
                    };
                    taken(transaction, content, script, seen)
                }
                Some(transaction) => {
                    lock(seen).transactions.push(transaction);
                    "554 5.5.1 no valid recipients".into()
                }
                None => "503 5.5.1 MAIL first".into(),
            }
        } else if chunking && upper.starts_with("BDAT ") {
            let mut words = upper["BDAT ".len()..].split_whitespace();
            let Some(size) = words.next().and_then(|n| n.parse::<usize>().ok()) else {
                return;
            };
            let last = words.next() == Some("LAST");
            let mut chunk = vec![0; size];
            if reader.read_exact(&mut chunk).is_err() {
                return;
            }
            chunks.extend_from_slice(&chunk);
            match current.take() {
                Some(mut transaction) if !transaction.rcpt_to.is_empty() && last => {
                    transaction.bdat = true;
                    taken(transaction, std::mem::take(&mut chunks), script, seen)
                }
                Some(transaction) if !transaction.rcpt_to.is_empty() => {
                    current = Some(transaction);
                    format!("250 2.0.0 {size} bytes received")
                }
                Some(transaction) => {
                    lock(seen).transactions.push(transaction);
                    "554 5.5.1 no valid recipients".into()
                }
                None => "503 5.5.1 MAIL first".into(),
            }
        } else if upper == "RSET" {
            if let Some(transaction) = current.take() {
                lock(seen).transactions.push(transaction);
            }
            "250 2.0.0 ok".into()
        } else if upper == "QUIT" {
            let _ = say("221 2.0.0 bye");
            break;
        } else if upper == "NOOP" {
            "250 2.0.0 ok".into()
        } else {
            "502 5.5.2 not implemented".into()
        };
        if !say(&reply) {
            break;
        }
    }
    // A transaction that ended without DATA (every RCPT refused) counts too.
    if let Some(transaction) = current {
        lock(seen).transactions.push(transaction);
    }
}

/// The end of a transaction's content (DATA's dot, the `LAST` chunk):
/// the scripted reply to it, recorded with the content.
fn taken(
    mut transaction: Transaction,
    content: Vec<u8>,
    script: &Mutex<Script>,
    seen: &Mutex<Seen>,
) -> String {
    let reply = lock(script).data.next("250 2.0.0 ok: queued");
    transaction.data = Some(content);
    transaction.data_reply = Some(reply.clone());
    lock(seen).transactions.push(transaction);
    reply
}

/// `<a@b.test> SIZE=…` → `a@b.test`.
fn path(argument: &str) -> String {
    let argument = argument.trim_start();
    let end = argument.find('>').unwrap_or(argument.len());
    argument[..end].trim_start_matches('<').to_string()
}

/// Content up to the `.` line, dot-unstuffed (RFC 5321 §4.5.2); `None`
/// when the connection ends first.
fn read_content(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut content = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if line == b".\r\n" {
            return Some(content);
        }
        let unstuffed = match line.first() {
            Some(b'.') => &line[1..],
            _ => &line[..],
        };
        content.extend_from_slice(unstuffed);
    }
}

/// Listeners on each of `ips`, all on one port (the relay has one
/// `mx_port`): the first binds port 0, the others take its number; a
/// number some other socket holds on one of the addresses is given up for
/// another, at most 50 times. Tests put any kind of receiver on them.
pub fn listeners_on_one_port(ips: &[&str]) -> Vec<TcpListener> {
    let ips: Vec<IpAddr> = ips
        .iter()
        .map(|ip| ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}")))
        .collect();
    'again: for _ in 0..50 {
        let first = TcpListener::bind((ips[0], 0)).expect("bind port 0");
        let port = first.local_addr().expect("local_addr").port();
        let mut listeners = vec![first];
        for ip in &ips[1..] {
            match TcpListener::bind((*ip, port)) {
                Ok(listener) => listeners.push(listener),
                Err(_) => continue 'again,
            }
        }
        return listeners;
    }
    panic!("no port free on all of {ips:?} in 50 tries");
}
