//! The pieces of the DANE lab that are not a zone or a receiver:
//!
//! * [`in_namespace`]: runs a closure on a thread of its own in a new
//!   network namespace (`unshare(CLONE_NEWNET)`, `lo` up). Several MX
//!   hosts share one `[delivery] mx_port`, so each needs its own address
//!   (127.0.0.2, .3, …); inside the namespace those are ours alone, and
//!   nothing outside it can be reached or disturbed. A network namespace
//!   belongs to a thread, not a process: the threads that thread starts
//!   and the processes it spawns (nsd, Postfix, tlsrelay, `tlsrelay
//!   probe`) inherit it, while the test harness's other threads stay
//!   outside. So the whole lab lives on that one thread and what it
//!   starts; the namespace disappears with the last of them. This was
//!   chosen over one `unshare --net` helper process because the lab's
//!   receivers are threads of the test process that record what they
//!   saw, which a helper process would have to ship back.
//! * [`DroppingDns`]: a forwarder in front of nsd (UDP and TCP, one
//!   127.0.0.1 port) that passes every query on except those for one
//!   name and type, which it swallows: the TLSA lookup that times out
//!   while the MX and address answers of the same secure zone still come.
//!   A stub resolver asks only the name servers it is given, so the
//!   dropping server must be the one the relay asks for everything.
//! * [`StripProxy`]: a man in the middle on the MX address that removes
//!   `STARTTLS` from the server's EHLO reply, refuses the command itself
//!   with `502` if the client sends it anyway, and records every byte the
//!   client sent (all of it in plaintext, which is the point).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Runs `lab` on a new thread in a new network namespace with `lo` up and
/// `extra` addresses (127.0.0.2 …) on it; its result, or its panic.
pub fn in_namespace<T: Send + 'static>(
    extra: &[&str],
    lab: impl FnOnce() -> T + Send + 'static,
) -> T {
    let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    let thread = std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET changes only this thread's
        // network namespace; no memory is touched.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {} (the DANE lab needs root, as .ci/run has)",
            std::io::Error::last_os_error()
        );
        ip(&["link", "set", "lo", "up"]);
        // 127.0.0.0/8 routes to lo anyway; Postfix wants the address on
        // the interface it is told to listen on.
        for address in &extra {
            ip(&["addr", "add", &format!("{address}/32"), "dev", "lo"]);
        }
        lab()
    });
    thread
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn ip(args: &[&str]) {
    let output =
        super::postfix::run_bounded(Command::new("ip").args(args), Duration::from_secs(10));
    assert!(
        output.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The question of a DNS message: lowercase name without the final dot,
/// and type.
pub fn question(message: &[u8]) -> Option<(String, u16)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*message.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        // No compression in a question we asked ourselves.
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(message.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let kind = u16::from_be_bytes([*message.get(at)?, *message.get(at + 1)?]);
    Some((labels.join("."), kind))
}

/// The type number of TLSA (RFC 6698).
pub const TLSA: u16 = 52;

/// A forwarding name server that never answers `(name, type)`.
pub struct DroppingDns {
    pub addr: SocketAddr,
    dropped: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl DroppingDns {
    /// Forwards to `upstream`, swallowing queries for `name` (lowercase,
    /// no final dot) of type `kind`.
    pub fn start(upstream: SocketAddr, name: &str, kind: u16) -> DroppingDns {
        let (udp, tcp) = udp_and_tcp();
        let addr = udp.local_addr().expect("UDP local_addr");
        let dropped = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let victim = (name.to_ascii_lowercase(), kind);
        let _ = udp.set_read_timeout(Some(Duration::from_millis(100)));
        let (count, flag, target) = (dropped.clone(), stop.clone(), victim.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 65535];
            while !flag.load(Ordering::SeqCst) {
                let Ok((n, client)) = udp.recv_from(&mut buf) else {
                    continue;
                };
                let query = buf[..n].to_vec();
                if question(&query).as_ref() == Some(&target) {
                    count.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let Ok(reply_to) = udp.try_clone() else {
                    continue;
                };
                std::thread::spawn(move || {
                    if let Some(answer) = ask_udp(upstream, &query) {
                        let _ = reply_to.send_to(&answer, client);
                    }
                });
            }
        });
        let (count, flag) = (dropped.clone(), stop.clone());
        tcp.set_nonblocking(true).expect("nonblocking TCP");
        std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match tcp.accept() {
                    Ok((stream, _)) => {
                        let (count, target) = (count.clone(), victim.clone());
                        std::thread::spawn(move || forward_tcp(stream, upstream, &target, &count));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        DroppingDns {
            addr,
            dropped,
            stop,
        }
    }

    /// How many queries it swallowed.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for DroppingDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn udp_and_tcp() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().expect("local_addr")) {
            return (udp, tcp);
        }
    }
    panic!("no 127.0.0.1 port free for both UDP and TCP in 50 tries");
}

fn ask_udp(upstream: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    socket.send_to(query, upstream).ok()?;
    let mut buf = [0u8; 65535];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

/// One length-prefixed DNS message (RFC 7766).
fn read_framed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).ok()?;
    Some(message)
}

fn write_framed(stream: &mut TcpStream, message: &[u8]) -> Option<()> {
    let len = u16::try_from(message.len()).ok()?.to_be_bytes();
    stream.write_all(&len).ok()?;
    stream.write_all(message).ok()
}

fn forward_tcp(
    mut client: TcpStream,
    upstream: SocketAddr,
    victim: &(String, u16),
    dropped: &AtomicUsize,
) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    while let Some(query) = read_framed(&mut client) {
        if question(&query).as_ref() == Some(victim) {
            dropped.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let answer = TcpStream::connect(upstream).ok().and_then(|mut server| {
            let _ = server.set_read_timeout(Some(Duration::from_secs(5)));
            write_framed(&mut server, &query)?;
            read_framed(&mut server)
        });
        match answer {
            Some(answer) => {
                if write_framed(&mut client, &answer).is_none() {
                    return;
                }
            }
            None => return,
        }
    }
}

/// A STARTTLS-stripping man in the middle.
pub struct StripProxy {
    pub addr: SocketAddr,
    /// Everything clients sent, per connection, in order.
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Whether the server offered STARTTLS in any EHLO reply it stripped.
    stripped: Arc<AtomicUsize>,
}

impl StripProxy {
    /// Listens on `listener`, forwarding each connection to `server`.
    pub fn on(listener: TcpListener, server: SocketAddr) -> StripProxy {
        let addr = listener.local_addr().expect("local_addr");
        let sent: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let stripped = Arc::new(AtomicUsize::new(0));
        let (record, count) = (sent.clone(), stripped.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = TcpStream::connect(server) else {
                    continue;
                };
                let index = {
                    let mut all = lock(&record);
                    all.push(Vec::new());
                    all.len() - 1
                };
                let (record, count) = (record.clone(), count.clone());
                std::thread::spawn(move || strip(client, upstream, &record, index, &count));
            }
        });
        StripProxy {
            addr,
            sent,
            stripped,
        }
    }

    /// What clients sent, one entry per connection.
    pub fn sent(&self) -> Vec<Vec<u8>> {
        lock(&self.sent).clone()
    }

    /// How many EHLO replies lost their STARTTLS line on the way.
    pub fn stripped(&self) -> usize {
        self.stripped.load(Ordering::SeqCst)
    }
}

/// Relays one connection: server to client with STARTTLS taken out of
/// multi-line replies, client to server recorded, STARTTLS answered here.
fn strip(
    client: TcpStream,
    server: TcpStream,
    record: &Mutex<Vec<Vec<u8>>>,
    index: usize,
    stripped: &AtomicUsize,
) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = server.set_read_timeout(Some(Duration::from_secs(30)));
    let (Ok(to_client), Ok(from_server), Ok(mut to_server)) =
        (client.try_clone(), server.try_clone(), server.try_clone())
    else {
        return;
    };
    let to_client = Arc::new(Mutex::new(to_client));
    let writer = to_client.clone();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut reader = BufReader::new(from_server);
            let mut reply: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                    break;
                }
                let last = line.get(3) != Some(&b'-');
                reply.push(line);
                if !last {
                    continue;
                }
                let before = reply.len();
                reply.retain(|l| {
                    !l.get(4..12)
                        .is_some_and(|w| w.eq_ignore_ascii_case(b"STARTTLS"))
                });
                if reply.len() < before {
                    stripped.fetch_add(1, Ordering::SeqCst);
                }
                let count = reply.len();
                let mut out = Vec::new();
                for (i, mut l) in reply.drain(..).enumerate() {
                    if l.len() > 3 {
                        l[3] = if i + 1 == count { b' ' } else { b'-' };
                    }
                    out.extend_from_slice(&l);
                }
                if lock(&writer).write_all(&out).is_err() {
                    break;
                }
            }
            let _ = lock(&writer).shutdown(Shutdown::Both);
        });
        let mut reader = BufReader::new(client);
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                break;
            }
            lock(record)[index].extend_from_slice(&line);
            if line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"STARTTLS") {
                let refused = b"502 5.5.1 STARTTLS not available\r\n";
                if lock(&to_client).write_all(refused).is_err() {
                    break;
                }
                continue;
            }
            if to_server.write_all(&line).is_err() {
                break;
            }
        }
        let _ = to_server.shutdown(Shutdown::Both);
    });
}
