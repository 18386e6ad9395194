//! A deliberately plain SMTP client over a blocking socket, for tests that
//! must control every byte (pipelining, smuggling, odd line endings), in
//! plaintext or over TLS (STARTTLS or implicit).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// The client's side of a TLS session over TCP.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

pub struct Client<S: Read + Write = TcpStream> {
    reader: BufReader<S>,
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to relay");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream
}

/// Runs the client side of a handshake over `stream` to its end, so that
/// a refused handshake fails here and not at the first command.
fn handshake(stream: TcpStream, config: Arc<ClientConfig>) -> TlsStream {
    let name = "relay.example.test".try_into().expect("server name");
    let connection = ClientConnection::new(config, name).expect("TLS client");
    let mut tls = StreamOwned::new(connection, stream);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("TLS handshake with the relay");
    }
    tls
}

impl Client<TcpStream> {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> (Client, String) {
        let mut client = Client {
            reader: BufReader::new(tcp(addr)),
        };
        let greeting = client.reply();
        (client, greeting)
    }

    /// Connects to an implicit-TLS listener: the handshake, then the greeting.
    pub fn connect_tls(addr: SocketAddr, config: Arc<ClientConfig>) -> (Client<TlsStream>, String) {
        let mut client = Client {
            reader: BufReader::new(handshake(tcp(addr), config)),
        };
        let greeting = client.reply();
        (client, greeting)
    }

    /// `STARTTLS`, its `220`, and the handshake.
    pub fn starttls(mut self, config: Arc<ClientConfig>) -> Client<TlsStream> {
        let reply = self.command("STARTTLS");
        assert_eq!(reply, "220 2.0.0 Ready to start TLS\r\n");
        self.into_tls(config)
    }

    /// The handshake over this connection, once the server said `220`.
    /// Nothing else may have arrived in plaintext before it.
    pub fn into_tls(self, config: Arc<ClientConfig>) -> Client<TlsStream> {
        assert!(
            self.reader.buffer().is_empty(),
            "plaintext after the 220 to STARTTLS: {:?}",
            String::from_utf8_lossy(self.reader.buffer())
        );
        Client {
            reader: BufReader::new(handshake(self.reader.into_inner(), config)),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }
}

impl Client<TlsStream> {
    /// The negotiated TLS session.
    pub fn tls(&self) -> &ClientConnection {
        &self.reader.get_ref().conn
    }
}

impl<S: Read + Write> Client<S> {
    /// Writes raw bytes, exactly.
    pub fn send(&mut self, bytes: &[u8]) {
        let stream = self.reader.get_mut();
        stream.write_all(bytes).expect("write to relay");
        stream.flush().expect("flush to relay");
    }

    /// The stream itself, for a test that drives it by hand; nothing
    /// read may be waiting in the buffer.
    pub fn into_stream(self) -> S {
        assert!(self.reader.buffer().is_empty(), "unread replies");
        self.reader.into_inner()
    }

    /// Reads one whole reply (all lines of a multi-line one), CRLFs kept.
    pub fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return reply,
                Ok(_) => {}
                Err(e) => panic!("reading a reply after {reply:?}: {e}"),
            }
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    /// Sends a command line and returns its reply.
    pub fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// `EHLO client.test`, checked to succeed; the reply.
    pub fn ehlo(&mut self) -> String {
        let reply = self.command("EHLO client.test");
        assert!(
            reply.starts_with("250-relay.example.test greets client.test\r\n"),
            "{reply}"
        );
        reply
    }

    /// MAIL, RCPTs and DATA, each checked to succeed: content may follow.
    pub fn start_data(&mut self, from: &str, to: &[&str]) {
        self.envelope(from, to);
        assert_eq!(
            self.command("DATA"),
            "354 End data with <CR><LF>.<CR><LF>\r\n"
        );
    }

    /// MAIL and RCPTs, each checked to succeed: DATA or BDAT may follow.
    pub fn envelope(&mut self, from: &str, to: &[&str]) {
        assert_eq!(
            self.command(&format!("MAIL FROM:<{from}>")),
            "250 2.1.0 Ok\r\n"
        );
        for rcpt in to {
            assert_eq!(
                self.command(&format!("RCPT TO:<{rcpt}>")),
                "250 2.1.5 Ok\r\n",
                "RCPT TO:<{rcpt}>"
            );
        }
    }

    /// [`start_data`](Self::start_data), then `content` (ending in CRLF)
    /// and the end marker; the reply to the content.
    pub fn deliver(&mut self, from: &str, to: &[&str], content: &str) -> String {
        self.start_data(from, to);
        self.send(content.as_bytes());
        self.command(".")
    }

    /// True when the server has closed the connection (reads EOF).
    pub fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }
}

/// Checks `reply` is the `250` that says a message is on disk.
pub fn assert_queued(reply: &str) {
    assert!(
        reply.starts_with("250 2.0.0 Ok: queued as "),
        "not queued: {reply}"
    );
}

/// Submits one message to the relay at `addr` (hostname
/// `relay.example.test`) as a client would: EHLO, the transaction, checked
/// to be queued, QUIT. `from` may be empty for the null sender `<>`.
pub fn submit(addr: SocketAddr, from: &str, to: &[&str], content: &str) {
    let (mut client, _) = Client::connect(addr);
    client.ehlo();
    assert_queued(&client.deliver(from, to, content));
    client.command("QUIT");
}

/// Submits `messages` ([sender, recipient, content]) to the relay at
/// `addr` in one session, each checked to be queued; their queue ids.
pub fn submit_all(addr: SocketAddr, messages: &[[String; 3]]) -> Vec<String> {
    let (mut client, _) = Client::connect(addr);
    client.ehlo();
    messages
        .iter()
        .map(|[from, to, content]| {
            let reply = client.deliver(from, &[to], content);
            assert_queued(&reply);
            reply
                .trim_end()
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}
