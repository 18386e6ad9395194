//! A scripted SMTP receiver whose TLS is broken: it offers STARTTLS,
//! answers `220`, and then does not do TLS (hangs up, sends garbage, or
//! stalls). Everything else it accepts in plaintext and records, so a test
//! can tell exactly what reached it in the clear.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
/// per RCPT and `plain:CONTENT` per message, all in plaintext.
pub type Seen = Arc<Mutex<Vec<String>>>;

/// A running receiver (its threads live as long as the test process).
pub struct FaultyReceiver {
    pub addr: SocketAddr,
    seen: Seen,
}

impl FaultyReceiver {
    /// Listens on 127.0.0.1 port 0.
    pub fn start(after: AfterStartTls) -> FaultyReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let seen: Seen = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &log, after));
            }
        });
        FaultyReceiver { addr, seen }
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

fn serve(mut stream: TcpStream, seen: &Seen, after: AfterStartTls) {
    let record = |entry: String| seen.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let mut reader = BufReader::new(stream.try_clone().unwrap_or_else(|e| panic!("{e}")));
    let _ = stream.write_all(b"220 broken.test ESMTP\r\n");
    let mut line = String::new();
    let mut content = String::new();
    let mut in_data = false;
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                record(format!("plain:{}", std::mem::take(&mut content)));
                let _ = stream.write_all(b"250 2.0.0 ok\r\n");
            } else {
                content.push_str(&line);
            }
        } else {
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" => b"250-broken.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
                "STAR" => {
                    record("starttls".into());
                    let _ = stream.write_all(b"220 2.0.0 go ahead\r\n");
                    broken_tls(&mut stream, after);
                    return;
                }
                "RCPT" => {
                    let address = line.trim_end().get(8..).unwrap_or("").to_string();
                    record(format!("rcpt:{address}"));
                    b"250 ok\r\n"
                }
                "DATA" => {
                    in_data = true;
                    b"354 go\r\n"
                }
                "QUIT" => {
                    let _ = stream.write_all(b"221 bye\r\n");
                    return;
                }
                _ => b"250 ok\r\n",
            };
            let _ = stream.write_all(reply);
        }
        line.clear();
    }
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
