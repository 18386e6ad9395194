//! A scripted next hop with real STARTTLS (rustls, std threads): it
//! records, per connection, the SNI the relay sent, the TLS version
//! agreed, whether any mail command came in plaintext, and the messages
//! it took. It offers only the TLS versions a test gives it, and can hang
//! up right after the handshake (no close_notify), the way a broken
//! server or a middlebox does.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned, SupportedProtocolVersion};

use super::ca::{self_signed, Key, Spec};

/// What happens once the handshake is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterTls {
    /// An ordinary SMTP server over TLS.
    Serve,
    /// As `Serve`, offering REQUIRETLS (RFC 8689) after STARTTLS.
    ServeRequireTls,
    /// MAIL FROM is answered by closing TCP without a TLS close_notify.
    HangUpOnMail,
}

/// One connection, as the receiver saw it.
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// The server name the client sent in its ClientHello.
    pub sni: Option<String>,
    /// `TLSv1_3`, `TLSv1_2`, or `None` when no handshake completed.
    pub version: Option<String>,
    /// A mail command (MAIL, RCPT, DATA) arrived before STARTTLS.
    pub plaintext_mail: bool,
    /// Every line the client sent before STARTTLS, as it came.
    pub plaintext: String,
    /// The MAIL and RCPT commands that came over TLS.
    pub envelope: Vec<String>,
    /// Contents taken over TLS, dot-unstuffed.
    pub messages: Vec<String>,
}

pub struct TlsReceiver {
    pub addr: SocketAddr,
    /// The self-signed certificate it serves (for TLSA records).
    pub cert: CertificateDer<'static>,
    sessions: Arc<Mutex<Vec<Session>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl TlsReceiver {
    /// Listens on `addr` (port 0 picks one) with a self-signed certificate
    /// for `name`, offering only `versions`.
    pub fn start(
        addr: SocketAddr,
        name: &str,
        versions: &[&'static SupportedProtocolVersion],
        after: AfterTls,
    ) -> TlsReceiver {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        TlsReceiver::on(listener, name, versions, after)
    }

    /// Like [`TlsReceiver::start`], on a listener the test bound.
    pub fn on(
        listener: TcpListener,
        name: &str,
        versions: &[&'static SupportedProtocolVersion],
        after: AfterTls,
    ) -> TlsReceiver {
        let issued = self_signed(&Spec::new(&[name], Key::P256));
        TlsReceiver::serving(listener, &issued.cert_pem, &issued.key_pem, versions, after)
    }

    /// Like [`TlsReceiver::on`], serving `chain_pem` (leaf first) and its
    /// `key_pem`: a certificate from a test CA, expired, or any other.
    pub fn serving(
        listener: TcpListener,
        chain_pem: &str,
        key_pem: &str,
        versions: &[&'static SupportedProtocolVersion],
        after: AfterTls,
    ) -> TlsReceiver {
        let addr = listener.local_addr().expect("local_addr");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("test key");
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("test certificate chain");
        let cert = chain.first().expect("a leaf certificate").clone();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        let config = Arc::new(config);
        let sessions: Arc<Mutex<Vec<Session>>> = Arc::default();
        let record = sessions.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (config, record) = (config.clone(), record.clone());
                std::thread::spawn(move || serve(stream, config, &record, after));
            }
        });
        TlsReceiver {
            addr,
            cert,
            sessions,
        }
    }

    pub fn sessions(&self) -> Vec<Session> {
        lock(&self.sessions).clone()
    }

    /// How many messages taken over TLS contain `text`; panics if any
    /// mail command ever came in plaintext.
    pub fn taken(&self, text: &str) -> usize {
        let sessions = self.sessions();
        assert!(!sessions.iter().any(|s| s.plaintext_mail), "{sessions:#?}");
        sessions
            .iter()
            .flat_map(|s| &s.messages)
            .filter(|m| m.contains(text))
            .count()
    }

    /// Waits (bounded, 20 s) until `done` holds for the sessions seen.
    pub fn wait_until(&self, what: &str, done: impl Fn(&[Session]) -> bool) -> Vec<Session> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let sessions = self.sessions();
            if done(&sessions) {
                return sessions;
            }
            assert!(
                Instant::now() < deadline,
                "{} never saw {what}: {sessions:#?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One connection's entry in the record.
struct Record<'a> {
    sessions: &'a Mutex<Vec<Session>>,
    index: usize,
}

impl Record<'_> {
    fn update(&self, change: impl FnOnce(&mut Session)) {
        change(&mut lock(self.sessions)[self.index]);
    }
}

/// Runs one connection; the session is recorded as it goes.
fn serve(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    sessions: &Mutex<Vec<Session>>,
    after: AfterTls,
) {
    let index = {
        let mut all = lock(sessions);
        all.push(Session::default());
        all.len() - 1
    };
    let record = Record { sessions, index };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut plain = stream;
    let mut reader = BufReader::new(read_half);
    let _ = plain.write_all(b"220 tls.test ESMTP\r\n");
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        record.update(|s| s.plaintext.push_str(&line));
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-tls.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
            "STAR" => {
                let _ = plain.write_all(b"220 2.0.0 go ahead\r\n");
                break;
            }
            "MAIL" | "RCPT" | "DATA" => {
                record.update(|s| s.plaintext_mail = true);
                b"530 5.7.0 STARTTLS first\r\n"
            }
            "QUIT" => {
                let _ = plain.write_all(b"221 bye\r\n");
                return;
            }
            _ => b"250 ok\r\n",
        };
        let _ = plain.write_all(reply);
    }
    // Nothing the client sent before its ClientHello may count.
    if !reader.buffer().is_empty() {
        return;
    }
    let Ok(connection) = ServerConnection::new(config) else {
        return;
    };
    let mut tls = StreamOwned::new(connection, plain);
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            let sni = tls.conn.server_name().map(str::to_string);
            record.update(|s| s.sni = sni);
            return;
        }
    }
    let sni = tls.conn.server_name().map(str::to_string);
    let version = tls.conn.protocol_version().map(|v| format!("{v:?}"));
    record.update(|s| {
        s.sni = sni;
        s.version = version;
    });
    converse_tls(tls, after, &record);
}

/// SMTP over the TLS stream, line by line.
fn converse_tls(
    tls: StreamOwned<ServerConnection, TcpStream>,
    after: AfterTls,
    record: &Record<'_>,
) {
    let mut reader = BufReader::new(tls);
    let mut line = String::new();
    let mut in_data = false;
    let mut content = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                let taken = std::mem::take(&mut content);
                record.update(|s| s.messages.push(taken));
                let _ = reader.get_mut().write_all(b"250 2.0.0 ok\r\n");
            } else {
                content.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            continue;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        if verb == "MAIL" || verb == "RCPT" {
            record.update(|s| s.envelope.push(line.trim_end().to_string()));
        }
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if after == AfterTls::ServeRequireTls => {
                b"250-tls.test\r\n250-PIPELINING\r\n250 REQUIRETLS\r\n"
            }
            "EHLO" => b"250-tls.test\r\n250 PIPELINING\r\n",
            "MAIL" if after == AfterTls::HangUpOnMail => {
                // TCP closes; rustls never sends its close_notify.
                let _ = reader.get_mut().sock.shutdown(std::net::Shutdown::Both);
                return;
            }
            "DATA" => {
                in_data = true;
                b"354 go ahead\r\n"
            }
            "QUIT" => {
                let _ = reader.get_mut().write_all(b"221 bye\r\n");
                return;
            }
            _ => b"250 ok\r\n",
        };
        let _ = reader.get_mut().write_all(reply);
        let _ = reader.get_mut().flush();
    }
}

/// The `3 1 1` TLSA record (DANE-EE, key, SHA-256) of `cert`.
pub fn tlsa_3_1_1(cert: &CertificateDer<'_>) -> tlsrelay::tls::dane::Tlsa {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(cert).expect("certificate");
    tlsrelay::tls::dane::Tlsa::dane_ee_spki_sha256(parsed.public_key().raw)
}
