//! A scripted SMTP receiver whose TLS is broken: it offers STARTTLS,
//! answers `220`, and then does not do TLS (hangs up, sends garbage, or
//! stalls), the way an attacker in the path breaks a handshake.
//! Everything else it accepts in plaintext and records, so a test can
//! tell exactly what reached it in the clear. Once [healed](FaultyReceiver::heal)
//! it does honest TLS on the same address, and records what came over it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::ca::{self_signed, Key, Spec};

/// What the receiver does once it has said `220` to STARTTLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterStartTls {
    /// Closes the connection: the handshake fails at once.
    HangUp,
    /// Answers the ClientHello with bytes that are not TLS, then closes.
    Garbage,
    /// Says nothing and keeps the connection open: the handshake stalls.
    Stall,
}

/// What the receiver saw, in order: `starttls` per STARTTLS, `rcpt:ADDR`
/// per RCPT in plaintext, `plain:CONTENT` per message in plaintext and
/// `tls:CONTENT` per message over TLS (once healed).
pub type Seen = Arc<Mutex<Vec<String>>>;

/// A running receiver (its threads live as long as the test process).
pub struct FaultyReceiver {
    pub addr: SocketAddr,
    seen: Seen,
    healed: Arc<AtomicBool>,
}

impl FaultyReceiver {
    /// Listens on 127.0.0.1 port 0.
    pub fn start(after: AfterStartTls) -> FaultyReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let seen: Seen = Arc::default();
        let healed = Arc::new(AtomicBool::new(false));
        let (log, honest) = (seen.clone(), healed.clone());
        let tls = honest_tls();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                let tls = honest.load(Ordering::SeqCst).then(|| tls.clone());
                std::thread::spawn(move || serve(stream, &log, after, tls));
            }
        });
        FaultyReceiver { addr, seen, healed }
    }

    /// The attacker is gone: connections from now on get honest TLS
    /// (TLS 1.3 and 1.2, a self-signed certificate for mx.broken.test).
    pub fn heal(&self) {
        self.healed.store(true, Ordering::SeqCst);
    }

    /// Everything seen so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (20 s at most) until an entry contains `needle`; everything seen.
    pub fn wait_for(&self, needle: &str) -> Vec<String> {
        wait_for(&self.seen, needle)
    }
}

/// Waits (20 s at most) until an entry of `seen` contains `needle`;
/// everything seen by then.
pub fn wait_for(seen: &Seen, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if now.iter().any(|s| s.contains(needle)) {
            return now;
        }
        assert!(Instant::now() < deadline, "{needle} never arrived: {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn honest_tls() -> Arc<ServerConfig> {
    let issued = self_signed(&Spec::new(&["mx.broken.test"], Key::P256));
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("test key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![issued.der], key)
        .expect("server certificate");
    Arc::new(config)
}

/// One connection: plaintext until STARTTLS, then broken TLS, or honest
/// TLS when `tls` is given.
fn serve(stream: TcpStream, seen: &Seen, after: AfterStartTls, tls: Option<Arc<ServerConfig>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let mut reader = BufReader::new(stream);
    let _ = reader.get_mut().write_all(b"220 broken.test ESMTP\r\n");
    if !dialogue(&mut reader, seen, "plain") {
        return;
    }
    let mut stream = reader.into_inner();
    let _ = stream.write_all(b"220 2.0.0 go ahead\r\n");
    match tls {
        None => broken_tls(&mut stream, after),
        Some(config) => {
            let Ok(connection) = ServerConnection::new(config) else {
                return;
            };
            let mut reader = BufReader::new(StreamOwned::new(connection, stream));
            dialogue(&mut reader, seen, "tls");
        }
    }
}

/// Commands until QUIT or the end; true when STARTTLS was asked (offered
/// only in plaintext). Contents are recorded as `KIND:CONTENT`.
fn dialogue<S: Read + Write>(reader: &mut BufReader<S>, seen: &Seen, kind: &str) -> bool {
    let record = |entry: String| seen.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
    let mut line = String::new();
    let mut content = String::new();
    let mut in_data = false;
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                record(format!("{kind}:{}", std::mem::take(&mut content)));
                let _ = reader.get_mut().write_all(b"250 2.0.0 ok\r\n");
            } else {
                content.push_str(&line);
            }
        } else {
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            let reply: &[u8] = match (verb.as_str(), kind) {
                ("EHLO", "plain") => b"250-broken.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
                ("EHLO", _) => b"250-broken.test\r\n250 PIPELINING\r\n",
                ("STAR", "plain") => {
                    record("starttls".into());
                    return true;
                }
                ("RCPT", _) => {
                    let address = line.trim_end().get(8..).unwrap_or("").to_string();
                    record(format!("rcpt:{address}"));
                    b"250 ok\r\n"
                }
                ("DATA", _) => {
                    in_data = true;
                    b"354 go\r\n"
                }
                ("QUIT", _) => {
                    let _ = reader.get_mut().write_all(b"221 bye\r\n");
                    let _ = reader.get_mut().flush();
                    return false;
                }
                _ => b"250 ok\r\n",
            };
            let _ = reader.get_mut().write_all(reply);
            let _ = reader.get_mut().flush();
        }
        line.clear();
    }
    false
}

/// The part after `220`: no TLS, in the chosen way.
fn broken_tls(stream: &mut TcpStream, after: AfterStartTls) {
    let mut hello = [0u8; 512];
    match after {
        AfterStartTls::HangUp => {}
        AfterStartTls::Garbage => {
            let _ = std::io::Read::read(stream, &mut hello);
            let _ = stream.write_all(b"this is not a TLS record\r\n");
        }
        // Longer than any handshake timeout a test sets; the read ends
        // early when the client gives up and closes.
        AfterStartTls::Stall => {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
        }
    }
    // Hang up by FIN and read on until the client closes: closing with the
    // ClientHello unread would reset the connection instead, and the
    // client would see either, at random.
    if after != AfterStartTls::Stall {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(stream, &mut rest);
}
