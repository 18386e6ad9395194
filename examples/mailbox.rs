//! A mailbox to try the relay with: the "internal mailbox server" that
//! `config/tlsrelay.toml` delivers example.test to (127.0.0.1:2526).
//!
//! ```sh
//! cargo run --release --example mailbox            # 127.0.0.1:2526, saves into var/mailbox/
//! cargo run --release --example mailbox -- ADDR DIR
//! ```
//!
//! It speaks just enough SMTP for the relay (EHLO, STARTTLS with a
//! self-signed certificate, MAIL, RCPT, DATA, RSET, NOOP, QUIT), saves
//! each message as `DIR/N.eml` and prints one line per message: sender,
//! recipients, Subject, size and how it arrived (TLS version or
//! plaintext). It is a demonstration, not a mail server: no limits beyond
//! a line length, no queue, no authentication.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use tlsrelay::tls::generate::{generate, KeyType, Options};

const MAX_LINE: u64 = 64 * 1024;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:2526").parse()?;
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "var/mailbox".into()));
    std::fs::create_dir_all(&dir)?;
    let acceptor = acceptor()?;
    let listener = TcpListener::bind(addr).await?;
    println!(
        "mailbox listening on {}, saving messages into {}/",
        listener.local_addr()?,
        dir.display()
    );
    let counter = Arc::new(AtomicU64::new(0));
    loop {
        let (socket, peer) = listener.accept().await?;
        let (acceptor, dir, counter) = (acceptor.clone(), dir.clone(), counter.clone());
        tokio::spawn(async move {
            let session = Session {
                dir,
                counter,
                tls: None,
            };
            if let Err(e) = session.run(Box::new(socket), acceptor).await {
                println!("session from {peer} ended: {e}");
            }
        });
    }
}

/// STARTTLS with a fresh self-signed certificate (the relay's
/// opportunistic TLS takes it; a connector with `verify-*` would not).
fn acceptor() -> Result<TlsAcceptor, Box<dyn std::error::Error>> {
    let generated = generate(&Options {
        hostnames: vec!["mailbox.example.test".into()],
        key_type: KeyType::EcdsaP256,
        days: 30,
    })?;
    let chain = CertificateDer::pem_slice_iter(generated.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(generated.key_pem.as_bytes())?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

struct Session {
    dir: PathBuf,
    counter: Arc<AtomicU64>,
    /// The TLS version once STARTTLS is done.
    tls: Option<String>,
}

impl Session {
    async fn run(mut self, socket: Box<dyn Stream>, acceptor: TlsAcceptor) -> std::io::Result<()> {
        let mut io = BufReader::new(socket);
        io.write_all(b"220 mailbox.example.test ESMTP mailbox example\r\n")
            .await?;
        let (mut from, mut to) = (String::new(), Vec::<String>::new());
        loop {
            let line = read_line(&mut io).await?;
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") {
                if self.tls.is_none() {
                    b"250-mailbox.example.test\r\n250-8BITMIME\r\n250 STARTTLS\r\n"
                } else {
                    b"250-mailbox.example.test\r\n250 8BITMIME\r\n"
                }
            } else if upper.starts_with("HELO") {
                b"250 mailbox.example.test\r\n"
            } else if upper == "STARTTLS" && self.tls.is_none() {
                io.write_all(b"220 2.0.0 go ahead\r\n").await?;
                let tls = acceptor.accept(io.into_inner()).await?;
                self.tls = (tls.get_ref().1.protocol_version())
                    .map(|v| format!("{v:?}").replace('_', "."));
                io = BufReader::new(Box::new(tls));
                (from, to) = (String::new(), Vec::new());
                continue;
            } else if upper.starts_with("MAIL FROM:") {
                from = address(&line["MAIL FROM:".len()..]);
                to.clear();
                b"250 2.1.0 ok\r\n"
            } else if upper.starts_with("RCPT TO:") {
                to.push(address(&line["RCPT TO:".len()..]));
                b"250 2.1.5 ok\r\n"
            } else if upper == "DATA" && !to.is_empty() {
                io.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let content = read_content(&mut io).await?;
                let saved = self.save(&from, &to, &content)?;
                to.clear();
                io.write_all(format!("250 2.0.0 saved as {saved}\r\n").as_bytes())
                    .await?;
                continue;
            } else if upper == "RSET" || upper == "NOOP" {
                b"250 2.0.0 ok\r\n"
            } else if upper == "QUIT" {
                io.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            } else {
                b"502 5.5.1 not here\r\n"
            };
            io.write_all(reply).await?;
        }
    }

    /// Writes the message and prints its line; the file's name.
    fn save(&self, from: &str, to: &[String], content: &[u8]) -> std::io::Result<String> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let path = self.dir.join(format!("{n}.eml"));
        std::fs::write(&path, content)?;
        let text = String::from_utf8_lossy(content);
        let subject = (text.lines().take_while(|l| !l.is_empty()))
            .find_map(|l| l.strip_prefix("Subject:"))
            .map(str::trim)
            .unwrap_or("(none)");
        let via = self.tls.as_deref().unwrap_or("plaintext");
        println!(
            "received from <{from}> for <{}>: \"{subject}\", {} bytes over {via}, saved as {}",
            to.join(">, <"),
            content.len(),
            path.display()
        );
        Ok(path.display().to_string())
    }
}

/// One command line without its CRLF; an over-long line or the end of the
/// connection ends the session.
async fn read_line(io: &mut BufReader<Box<dyn Stream>>) -> std::io::Result<String> {
    let mut line = Vec::new();
    let n = (&mut *io)
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 || !line.ends_with(b"\n") {
        return Err(std::io::Error::other("connection closed"));
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_string())
}

/// DATA content up to the lone ".", dot-unstuffed, lines ended by CRLF.
async fn read_content(io: &mut BufReader<Box<dyn Stream>>) -> std::io::Result<Vec<u8>> {
    let mut content = Vec::new();
    loop {
        let line = read_line(io).await?;
        if line == "." {
            return Ok(content);
        }
        content.extend_from_slice(line.strip_prefix('.').unwrap_or(&line).as_bytes());
        content.extend_from_slice(b"\r\n");
    }
}

/// The address inside `<…>`, parameters dropped.
fn address(argument: &str) -> String {
    let argument = argument.trim();
    match (argument.find('<'), argument.find('>')) {
        (Some(open), Some(close)) if open < close => argument[open + 1..close].to_string(),
        _ => argument.split_whitespace().next().unwrap_or("").to_string(),
    }
}
