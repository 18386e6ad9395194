//! The SMTP sink of issue 8: accepts every message (DATA, or BDAT when the
//! client uses the CHUNKING it offers, with PIPELINING and optionally
//! STARTTLS), counts it and throws it away; it can delay the reply to the
//! end of a message or answer every Nth message with a temporary failure,
//! or refuse everything for now (`450` to RCPT or `421` at connect) until
//! told to accept, which is how `compare.sh` fills a relay's queue with
//! deferred messages. Its first line on stdout is the address it listens
//! on (so scripts bind port 0); `count` on stdin prints the count so far,
//! `accept` and `refuse` switch the mode; SIGTERM, SIGINT, the end of
//! stdin (when stdin is a pipe or a terminal) or `--max-seconds` print the
//! final count and end it.

// Each tool uses its own part of the shared module.
#[allow(dead_code)]
mod common;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_rustls::TlsAcceptor;

use common::bdat::{parse_bdat, skip_chunk};
use common::smtp::{read_line, Boxed};

#[derive(Parser, Debug)]
#[command(name = "sink", about = "SMTP sink that counts messages (issue 8)")]
struct Args {
    /// Where to listen; port 0 picks a free port, printed on the first line.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Offer STARTTLS with a fresh self-signed certificate.
    #[arg(long)]
    starttls: bool,
    /// Wait this long before answering the end of a message (DATA's final
    /// dot or the LAST BDAT chunk).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Answer every Nth message with `451 4.3.0` instead of `250` (0: never).
    #[arg(long, default_value_t = 0)]
    tempfail_every: u64,
    /// Start refusing every message for now: `450` to each RCPT, or `421`
    /// at connect; `accept` on stdin switches to accepting, `refuse` back.
    #[arg(long, value_enum)]
    refuse: Option<Refuse>,
    /// Wait this long before each write of replies, the greeting
    /// included: a next hop a round trip away (loopback has none), where
    /// each round trip a client makes per message costs this much.
    #[arg(long, default_value_t = 0)]
    rtt_ms: u64,
    /// Do not offer CHUNKING, so clients send DATA (to compare the two).
    #[arg(long)]
    no_chunking: bool,
    /// The name in the greeting and the EHLO reply.
    #[arg(long, default_value = "sink.example.test")]
    hostname: String,
    /// Stop after this many seconds whatever happens.
    #[arg(long, default_value_t = 3600)]
    max_seconds: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Where a refusing sink says no.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Refuse {
    /// `450 4.3.2` to every RCPT: each message is tried and deferred.
    Rcpt,
    /// `421 4.3.2` instead of the greeting, then the connection is closed.
    Connect,
}

/// `first_us` before any `250` (since the start or the last `accept`).
const NONE_YET: u64 = u64::MAX;

struct Shared {
    args: Args,
    tls: Option<TlsAcceptor>,
    started: Instant,
    /// Messages answered `250`.
    accepted: AtomicU64,
    /// Messages whose content completed, answered `250` or tempfailed.
    completed: AtomicU64,
    /// Microseconds from `started` to the last `250`.
    last_us: AtomicU64,
    connections: AtomicU64,
    /// Refusing now (the kind is `args.refuse`, `rcpt` when not given).
    refusing: AtomicBool,
    /// RCPTs or connections refused so far.
    refused: AtomicU64,
    /// Microseconds from `started` to the first `250` since the start or
    /// the last `accept` command.
    first_us: AtomicU64,
}

impl Shared {
    fn stats(&self) -> String {
        let completed = self.completed.load(Ordering::Relaxed);
        let accepted = self.accepted.load(Ordering::Relaxed);
        let first = match self.first_us.load(Ordering::Relaxed) {
            NONE_YET => "none".to_string(),
            us => format!("{:.6}", us as f64 / 1e6),
        };
        format!(
            "count={accepted} tempfailed={} refused={} connections={} first={first} last={:.6} now={:.6}",
            completed - accepted.min(completed),
            self.refused.load(Ordering::Relaxed),
            self.connections.load(Ordering::Relaxed),
            self.last_us.load(Ordering::Relaxed) as f64 / 1e6,
            self.started.elapsed().as_secs_f64(),
        )
    }

    /// Where this sink refuses now, if it does.
    fn refusing(&self) -> Option<Refuse> {
        self.refusing
            .load(Ordering::Relaxed)
            .then_some(self.args.refuse.unwrap_or(Refuse::Rcpt))
    }

    /// The end of a message's content (DATA's final dot, the LAST BDAT
    /// chunk): waits `--delay-ms`, counts it and adds its reply, `451`
    /// for every `--tempfail-every`th.
    async fn complete(&self, out: &mut Vec<u8>) {
        if self.args.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.args.delay_ms)).await;
        }
        let n = self.completed.fetch_add(1, Ordering::Relaxed) + 1;
        let every = self.args.tempfail_every;
        if every > 0 && n.is_multiple_of(every) {
            out.extend_from_slice(b"451 4.3.0 Tempfail as configured\r\n");
            return;
        }
        let id = self.accepted.fetch_add(1, Ordering::Relaxed) + 1;
        let at = self.started.elapsed().as_micros() as u64;
        self.last_us.fetch_max(at, Ordering::Relaxed);
        let _ = self
            .first_us
            .compare_exchange(NONE_YET, at, Ordering::Relaxed, Ordering::Relaxed);
        out.extend_from_slice(format!("250 2.0.0 Ok: queued as {id}\r\n").as_bytes());
    }

    /// `accept` or `refuse` from stdin: the new mode, as a line for scripts.
    fn switch(&self, refuse: bool) -> String {
        if !refuse {
            self.first_us.store(NONE_YET, Ordering::Relaxed);
        }
        self.refusing.store(refuse, Ordering::Relaxed);
        let mode = if refuse { "refusing" } else { "accepting" };
        format!(
            "mode={mode} now={:.6}",
            self.started.elapsed().as_secs_f64()
        )
    }
}

/// Adds to the reply buffer; `flush` sends it once no pipelined input
/// waits (RFC 2920 §3.2: replies to a batch may go together), `rtt`
/// after (`--rtt-ms`).
async fn flush(io: &mut BufReader<Boxed>, out: &mut Vec<u8>, rtt: Duration) -> std::io::Result<()> {
    if !out.is_empty() && io.buffer().is_empty() {
        if !rtt.is_zero() {
            tokio::time::sleep(rtt).await;
        }
        io.get_mut().write_all(out).await?;
        io.get_mut().flush().await?;
        out.clear();
    }
    Ok(())
}

/// Serves one session; `Some(stream)` when the client asked for STARTTLS.
async fn serve(shared: &Shared, stream: Boxed, tls: bool) -> std::io::Result<Option<Boxed>> {
    let mut io = BufReader::new(stream);
    let rtt = Duration::from_millis(shared.args.rtt_ms);
    let mut out: Vec<u8> = Vec::with_capacity(512);
    let mut line = Vec::with_capacity(1024);
    // A transaction: MAIL given, RCPTs accepted, a BDAT chunk taken.
    let (mut mail, mut rcpts, mut chunked) = (false, 0usize, false);
    if !tls && matches!(shared.refusing(), Some(Refuse::Connect)) {
        shared.refused.fetch_add(1, Ordering::Relaxed);
        let refusal = format!(
            "421 4.3.2 {} Not accepting mail for now\r\n",
            shared.args.hostname
        );
        io.get_mut().write_all(refusal.as_bytes()).await?;
        let _ = io.get_mut().shutdown().await;
        return Ok(None);
    }
    if !tls {
        out.extend_from_slice(format!("220 {} ESMTP sink\r\n", shared.args.hostname).as_bytes());
        flush(&mut io, &mut out, rtt).await?;
    }
    while read_line(&mut io, &mut line).await? {
        let verb: String = line
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .map(|b| b.to_ascii_uppercase() as char)
            .collect();
        match verb.as_str() {
            "EHLO" => {
                let starttls = shared.tls.is_some() && !tls;
                out.extend_from_slice(format!("250-{}\r\n", shared.args.hostname).as_bytes());
                out.extend_from_slice(b"250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 104857600\r\n");
                if starttls {
                    out.extend_from_slice(b"250-STARTTLS\r\n");
                }
                if !shared.args.no_chunking {
                    out.extend_from_slice(b"250-CHUNKING\r\n");
                }
                out.extend_from_slice(b"250 ENHANCEDSTATUSCODES\r\n");
                (mail, rcpts, chunked) = (false, 0, false);
            }
            "HELO" => out.extend_from_slice(format!("250 {}\r\n", shared.args.hostname).as_bytes()),
            "MAIL" => {
                (mail, rcpts, chunked) = (true, 0, false);
                out.extend_from_slice(b"250 2.1.0 Ok\r\n");
            }
            "RCPT" if mail && shared.refusing().is_some() => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                out.extend_from_slice(b"450 4.3.2 Not accepting mail for now\r\n");
            }
            "RCPT" if mail => {
                rcpts += 1;
                out.extend_from_slice(b"250 2.1.5 Ok\r\n");
            }
            "DATA" if mail && rcpts > 0 && !chunked => {
                out.extend_from_slice(b"354 End data with <CR><LF>.<CR><LF>\r\n");
                flush(&mut io, &mut out, rtt).await?;
                loop {
                    if !read_line(&mut io, &mut line).await? {
                        return Ok(None);
                    }
                    if line == b".\r\n" {
                        break;
                    }
                }
                shared.complete(&mut out).await;
                (mail, rcpts) = (false, 0);
            }
            "BDAT" => {
                let Some((size, last)) = parse_bdat(&line) else {
                    // Where the chunk ends is unknown, so nothing after this
                    // line can be read as a command: answer and close.
                    out.extend_from_slice(b"501 5.5.4 Syntax: BDAT size [LAST]\r\n");
                    io.get_mut().write_all(&out).await?;
                    let _ = io.get_mut().shutdown().await;
                    return Ok(None);
                };
                // The chunk is read whatever the answer (RFC 3030 §2).
                if !skip_chunk(&mut io, size).await? {
                    return Ok(None);
                }
                if !mail {
                    out.extend_from_slice(b"503 5.5.1 Bad sequence of commands\r\n");
                } else if rcpts == 0 {
                    // As Postfix answers, e.g. after every RCPT was refused.
                    out.extend_from_slice(b"554 5.5.1 No valid recipients\r\n");
                } else if last {
                    shared.complete(&mut out).await;
                    (mail, rcpts, chunked) = (false, 0, false);
                } else {
                    chunked = true;
                    out.extend_from_slice(
                        format!("250 2.0.0 {size} octets received\r\n").as_bytes(),
                    );
                }
            }
            // DATA after BDAT in one transaction is a 503 (RFC 3030 §2).
            "RCPT" | "DATA" => out.extend_from_slice(b"503 5.5.1 Bad sequence of commands\r\n"),
            "RSET" => {
                (mail, rcpts, chunked) = (false, 0, false);
                out.extend_from_slice(b"250 2.0.0 Ok\r\n");
            }
            "NOOP" => out.extend_from_slice(b"250 2.0.0 Ok\r\n"),
            "QUIT" => {
                out.extend_from_slice(b"221 2.0.0 Bye\r\n");
                io.get_mut().write_all(&out).await?;
                let _ = io.get_mut().shutdown().await;
                return Ok(None);
            }
            "STARTTLS" if shared.tls.is_some() && !tls => {
                out.extend_from_slice(b"220 2.0.0 Ready to start TLS\r\n");
                io.get_mut().write_all(&out).await?;
                // Input pipelined after STARTTLS is an attack (RFC 3207 §4.2).
                if !io.buffer().is_empty() {
                    return Ok(None);
                }
                return Ok(Some(io.into_inner()));
            }
            _ => out.extend_from_slice(b"502 5.5.2 Command not implemented\r\n"),
        }
        flush(&mut io, &mut out, rtt).await?;
    }
    Ok(None)
}

async fn connection(shared: Arc<Shared>, stream: tokio::net::TcpStream) {
    shared.connections.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let Ok(Some(plain)) = serve(&shared, Box::new(stream), false).await else {
        return;
    };
    let Some(acceptor) = shared.tls.clone() else {
        return;
    };
    if let Ok(tls) = acceptor.accept(plain).await {
        let _ = serve(&shared, Box::new(tls), true).await;
    }
}

/// Watch stdin only when someone can close it: a pipe, a FIFO, a socket or
/// a terminal. `/dev/null` (a background job's stdin) would end us at once.
fn stdin_is_a_channel() -> bool {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return true;
    }
    std::fs::metadata("/dev/stdin")
        .map(|m| m.file_type().is_fifo() || m.file_type().is_socket())
        .unwrap_or(false)
}

#[tokio::main]
async fn main() {
    common::usage_if_bare::<Args>();
    let args = Args::parse();
    let Some(listen) = args.listen else {
        eprintln!("sink: --listen ADDRESS:PORT is required (port 0 picks one)");
        std::process::exit(2);
    };
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sink: cannot listen on {listen}: {e}");
            std::process::exit(2);
        }
    };
    let address = listener.local_addr().unwrap_or(listen);
    let shared = Arc::new(Shared {
        tls: args
            .starttls
            .then(|| TlsAcceptor::from(common::tls::server_config(&args.hostname))),
        started: Instant::now(),
        accepted: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        last_us: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        refusing: AtomicBool::new(args.refuse.is_some()),
        refused: AtomicU64::new(0),
        first_us: AtomicU64::new(NONE_YET),
        args,
    });
    println!("{address}");
    let accept = {
        let shared = shared.clone();
        async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(connection(shared.clone(), stream));
                }
            }
        }
    };
    let stdin = {
        let shared = shared.clone();
        async move {
            if !stdin_is_a_channel() {
                return std::future::pending().await;
            }
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match line.trim() {
                    "count" => println!("{}", shared.stats()),
                    "accept" => println!("{}", shared.switch(false)),
                    "refuse" => println!("{}", shared.switch(true)),
                    _ => {}
                }
            }
        }
    };
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            eprintln!("sink: cannot install signal handlers");
            std::process::exit(2);
        }
    };
    let limit = Duration::from_secs(shared.args.max_seconds);
    tokio::select! {
        _ = accept => {}
        _ = stdin => {}
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = tokio::time::sleep(limit) => eprintln!("sink: --max-seconds reached"),
    }
    println!("{}", shared.stats());
    // Returning would wait for the blocking read of stdin, which an open
    // pipe (a script's FIFO) never ends: a SIGTERM would not end the sink.
    std::process::exit(0);
}
