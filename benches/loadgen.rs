//! The SMTP load generator of issue 8: `--sessions` concurrent sessions
//! share `--messages` messages of `--size` bytes to `--rcpts` recipients
//! each, over plaintext or STARTTLS, with or without pipelining (RFC 2920),
//! reusing connections or opening one per message. It reports messages
//! per second, the p50/p99 time from the end of DATA (the final `.`
//! written) to the `250`, and the errors by kind. With `--idle N` it sends
//! no mail: it opens N sessions, takes each through EHLO (and STARTTLS),
//! and holds them, so a script can measure what an idle session costs the
//! server. benches/README.md has the options; a bare `cargo bench` only
//! prints them.

// Each tool uses its own part of the shared module.
#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::signal::unix::{signal, SignalKind};
use tokio_rustls::TlsConnector;

use common::smtp::{message_wire, read_reply, Boxed, Reply};

#[derive(Parser, Debug)]
#[command(name = "loadgen", about = "SMTP load generator (issue 8)")]
struct Args {
    /// The server to load, ADDRESS:PORT.
    #[arg(long)]
    target: Option<SocketAddr>,
    /// Concurrent SMTP sessions.
    #[arg(long, default_value_t = 50)]
    sessions: usize,
    /// Messages in all, shared by the sessions.
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
    /// Message size in bytes, headers included.
    #[arg(long, default_value_t = 2048)]
    size: usize,
    /// Recipients per message (rcptN@DOMAIN).
    #[arg(long, default_value_t = 1)]
    rcpts: usize,
    /// Recipient domain.
    #[arg(long, default_value = "example.test")]
    domain: String,
    /// Upgrade every session with STARTTLS (fails if not offered).
    #[arg(long)]
    starttls: bool,
    /// Send MAIL, RCPT and DATA in one write when the server offers PIPELINING.
    #[arg(long)]
    pipelining: bool,
    /// Keep each connection for many messages (the default).
    #[arg(long, conflicts_with = "new_connection_per_message")]
    reuse: bool,
    /// QUIT and reconnect after every message.
    #[arg(long)]
    new_connection_per_message: bool,
    /// Give up on any one reply after this many seconds.
    #[arg(long, default_value_t = 30)]
    reply_timeout: u64,
    /// Stop claiming new messages after this many seconds in all.
    #[arg(long, default_value_t = 600)]
    max_seconds: u64,
    /// Send no mail: open this many sessions (at most --sessions
    /// connecting at a time), take each through EHLO (and STARTTLS and
    /// EHLO again with --starttls), print a RESULT line once all have been
    /// tried, and hold them idle.
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// With --idle, how long to hold the sessions after the RESULT line;
    /// SIGTERM or SIGINT ends the hold sooner. Then every session says QUIT.
    #[arg(long, default_value_t = 30)]
    hold_seconds: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Why one message did not get its `250`.
#[derive(Debug)]
enum Failure {
    Connect(std::io::Error),
    Io(&'static str, std::io::Error),
    Timeout(&'static str),
    Reply(&'static str, u16),
    NoStartTls,
}

impl Failure {
    /// The error class reported: phase and kind, not the message text.
    fn kind(&self) -> String {
        match self {
            Failure::Connect(e) => format!("connect: {:?}", e.kind()),
            Failure::Io(phase, e) => format!("{phase}: {:?}", e.kind()),
            Failure::Timeout(phase) => format!("{phase}: timeout"),
            Failure::Reply(phase, code) => format!("{phase}: {}xx", code / 100),
            Failure::NoStartTls => "ehlo: STARTTLS not offered".into(),
        }
    }
}

struct Shared {
    args: Args,
    target: SocketAddr,
    wire: Vec<u8>,
    /// MAIL, the RCPTs and DATA, one command each…
    envelope: Vec<Vec<u8>>,
    /// …and all together, for pipelining.
    burst: Vec<u8>,
    remaining: AtomicU64,
    tls: TlsConnector,
    stop_at: Instant,
}

/// One connection after EHLO (and STARTTLS, when asked).
struct Conn {
    io: BufReader<Boxed>,
    line: Vec<u8>,
    pipelining: bool,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
    connections: u64,
}

impl Conn {
    async fn reply(&mut self, shared: &Shared, phase: &'static str) -> Result<Reply, Failure> {
        let timeout = Duration::from_secs(shared.args.reply_timeout);
        match tokio::time::timeout(timeout, read_reply(&mut self.io, &mut self.line)).await {
            Err(_) => Err(Failure::Timeout(phase)),
            Ok(Err(e)) => Err(Failure::Io(phase, e)),
            Ok(Ok(reply)) if reply.is_positive() => Ok(reply),
            Ok(Ok(reply)) => Err(Failure::Reply(phase, reply.code)),
        }
    }

    async fn send(&mut self, phase: &'static str, bytes: &[u8]) -> Result<(), Failure> {
        let io = self.io.get_mut();
        io.write_all(bytes)
            .await
            .map_err(|e| Failure::Io(phase, e))?;
        io.flush().await.map_err(|e| Failure::Io(phase, e))
    }

    async fn ehlo(&mut self, shared: &Shared) -> Result<Reply, Failure> {
        self.send("ehlo", b"EHLO loadgen.example.net\r\n").await?;
        self.reply(shared, "ehlo").await
    }

    async fn open(shared: &Shared) -> Result<Conn, Failure> {
        let tcp = TcpStream::connect(shared.target)
            .await
            .map_err(Failure::Connect)?;
        let _ = tcp.set_nodelay(true);
        let mut conn = Conn {
            io: BufReader::new(Box::new(tcp) as Boxed),
            line: Vec::with_capacity(512),
            pipelining: false,
        };
        conn.reply(shared, "greeting").await?;
        let mut ehlo = conn.ehlo(shared).await?;
        if shared.args.starttls {
            if !ehlo.has_keyword("STARTTLS") {
                return Err(Failure::NoStartTls);
            }
            conn.send("starttls", b"STARTTLS\r\n").await?;
            conn.reply(shared, "starttls").await?;
            // Nothing read before the handshake survives it (RFC 3207 §4.2).
            let plain = conn.io.into_inner();
            let name =
                ServerName::try_from("relay.example.test").map_err(|_| Failure::NoStartTls)?;
            let tls = shared
                .tls
                .connect(name, plain)
                .await
                .map_err(|e| Failure::Io("tls handshake", e))?;
            conn.io = BufReader::new(Box::new(tls) as Boxed);
            ehlo = conn.ehlo(shared).await?;
        }
        conn.pipelining = shared.args.pipelining && ehlo.has_keyword("PIPELINING");
        Ok(conn)
    }

    /// One transaction; the time from the end of DATA to the `250`.
    async fn message(&mut self, shared: &Shared) -> Result<Duration, Failure> {
        let last = shared.envelope.len() - 1;
        let phase = |i: usize| match i {
            0 => "mail",
            _ if i == last => "data",
            _ => "rcpt",
        };
        if self.pipelining {
            self.send("mail", &shared.burst).await?;
            for i in 0..=last {
                self.reply(shared, phase(i)).await?;
            }
        } else {
            for (i, command) in shared.envelope.iter().enumerate() {
                self.send(phase(i), command).await?;
                self.reply(shared, phase(i)).await?;
            }
        }
        self.send("content", &shared.wire).await?;
        let end_of_data = Instant::now();
        self.reply(shared, "end of data").await?;
        Ok(end_of_data.elapsed())
    }

    /// Says QUIT; true when the server answered it (the session was
    /// still open).
    async fn quit(mut self, shared: &Shared) -> bool {
        self.send("quit", b"QUIT\r\n").await.is_ok() && self.reply(shared, "quit").await.is_ok()
    }
}

/// One session: claims messages until none are left, reconnecting after
/// an error (the failed message is counted, not retried).
async fn session(shared: Arc<Shared>) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<Conn> = None;
    let claim = || {
        shared
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    };
    while Instant::now() < shared.stop_at && claim() {
        let mut c = match conn.take() {
            Some(c) => c,
            None => {
                tally.connections += 1;
                match Conn::open(&shared).await {
                    Ok(c) => c,
                    Err(failure) => {
                        *tally.errors.entry(failure.kind()).or_default() += 1;
                        continue;
                    }
                }
            }
        };
        match c.message(&shared).await {
            Ok(took) => {
                tally.ok += 1;
                tally
                    .latencies_us
                    .push(took.as_micros().min(u32::MAX as u128) as u32);
                if shared.args.new_connection_per_message {
                    c.quit(&shared).await;
                } else {
                    conn = Some(c);
                }
            }
            Err(failure) => {
                *tally.errors.entry(failure.kind()).or_default() += 1;
                // A refused message leaves the session usable; anything
                // else (or a refusal mid-batch, replies unread) does not.
                if matches!(failure, Failure::Reply("end of data", _))
                    && !shared.args.new_connection_per_message
                {
                    conn = Some(c);
                }
            }
        }
    }
    if let Some(c) = conn {
        c.quit(&shared).await;
    }
    tally
}

fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1000.0
}

/// `--idle`: opens the sessions, reports how many got through EHLO (and
/// STARTTLS), holds them for `--hold-seconds` or until a signal, then
/// says QUIT on each.
async fn idle(shared: Arc<Shared>) {
    let n = shared.args.idle;
    // One descriptor per session: the soft limit (often 1,024) would stop
    // a 10,000-session run long before the hard one.
    match tlsrelay::net::raise_open_file_limit() {
        Ok((_, now)) if (now as u128) < n as u128 + 64 => {
            eprintln!(
                "loadgen: the open-file limit is {now}, too low for {n} sessions; raise ulimit -n"
            )
        }
        Ok(_) => {}
        Err(e) => eprintln!("loadgen: cannot raise the open-file limit: {e}"),
    }
    let start = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(shared.args.sessions.max(1)));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (shared, gate) = (shared.clone(), gate.clone());
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await;
            Conn::open(&shared).await
        });
    }
    let mut conns = Vec::with_capacity(n);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(joined) = opening.join_next().await {
        match joined {
            Ok(Ok(conn)) => conns.push(conn),
            Ok(Err(failure)) => *errors.entry(failure.kind()).or_default() += 1,
            Err(e) => *errors.entry(format!("session task: {e}")).or_default() += 1,
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let failed: u64 = errors.values().sum();
    println!(
        "{} of {n} sessions established in {seconds:.2} s, {failed} failed; holding them {} s",
        conns.len(),
        shared.args.hold_seconds
    );
    for (kind, count) in &errors {
        println!("  error {kind}: {count}");
    }
    println!(
        "RESULT idle={n} established={} errors={failed} seconds={seconds:.3}",
        conns.len()
    );
    let hold = tokio::time::sleep(Duration::from_secs(shared.args.hold_seconds));
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = hold => {}
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        },
        Err(_) => tokio::select! {
            _ = hold => {}
            _ = tokio::signal::ctrl_c() => {}
        },
    }
    // A session the server dropped during the hold does not answer QUIT.
    let held = conns.len();
    let mut closing = tokio::task::JoinSet::new();
    for conn in conns {
        let shared = shared.clone();
        closing.spawn(async move {
            tokio::time::timeout(Duration::from_secs(10), conn.quit(&shared))
                .await
                .unwrap_or(false)
        });
    }
    let mut answered = 0usize;
    while let Some(joined) = closing.join_next().await {
        answered += usize::from(joined.unwrap_or(false));
    }
    println!(
        "released {held} sessions after {:.1} s; {answered} still answered QUIT",
        start.elapsed().as_secs_f64()
    );
    println!("RELEASED held={held} quit_answered={answered}");
}

#[tokio::main]
async fn main() {
    common::usage_if_bare::<Args>();
    let args = Args::parse();
    let Some(target) = args.target else {
        eprintln!("loadgen: --target ADDRESS:PORT is required");
        std::process::exit(2);
    };
    let mut envelope =
        vec![format!("MAIL FROM:<loadgen@example.net> SIZE={}\r\n", args.size).into_bytes()];
    for i in 0..args.rcpts {
        envelope.push(format!("RCPT TO:<rcpt{i}@{}>\r\n", args.domain).into_bytes());
    }
    envelope.push(b"DATA\r\n".to_vec());
    let mode = format!(
        "{}, {}, {}",
        if args.starttls {
            "STARTTLS"
        } else {
            "plaintext"
        },
        if args.new_connection_per_message {
            "new connection per message"
        } else {
            "reuse"
        },
        if args.pipelining {
            "pipelining"
        } else {
            "no pipelining"
        },
    );
    if args.idle > 0 {
        println!(
            "loadgen: {} idle sessions to {target} ({}), {} connecting at a time, held {} s",
            args.idle,
            if args.starttls {
                "STARTTLS"
            } else {
                "plaintext"
            },
            args.sessions.max(1),
            args.hold_seconds
        );
    } else {
        println!(
            "loadgen: {} messages of {} B, {} recipient(s), {} sessions to {target} ({mode})",
            args.messages, args.size, args.rcpts, args.sessions
        );
    }
    let shared = Arc::new(Shared {
        wire: message_wire(args.size, &args.domain),
        burst: envelope.concat(),
        envelope,
        remaining: AtomicU64::new(args.messages),
        tls: TlsConnector::from(common::tls::client_config()),
        stop_at: Instant::now() + Duration::from_secs(args.max_seconds),
        target,
        args,
    });
    if shared.args.idle > 0 {
        idle(shared).await;
        return;
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..shared.args.sessions.max(1))
        .map(|_| tokio::spawn(session(shared.clone())))
        .collect();
    let mut all = Tally::default();
    for task in tasks {
        match task.await {
            Ok(t) => {
                all.ok += t.ok;
                all.connections += t.connections;
                all.latencies_us.extend(t.latencies_us);
                for (kind, n) in t.errors {
                    *all.errors.entry(kind).or_default() += n;
                }
            }
            Err(e) => *all.errors.entry(format!("session task: {e}")).or_default() += 1,
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let errors: u64 = all.errors.values().sum();
    let rate = all.ok as f64 / seconds;
    let (p50, p99) = (
        percentile_ms(&all.latencies_us, 50.0),
        percentile_ms(&all.latencies_us, 99.0),
    );
    println!(
        "{} accepted, {errors} errors in {seconds:.2} s over {} connections: {rate:.0} msg/s; \
         end of DATA to 250: p50 {p50:.2} ms, p99 {p99:.2} ms",
        all.ok, all.connections
    );
    for (kind, n) in &all.errors {
        println!("  error {kind}: {n}");
    }
    // One machine-readable line for benches/compare.sh.
    println!(
        "RESULT ok={} errors={errors} seconds={seconds:.3} rate={rate:.1} p50_ms={p50:.3} p99_ms={p99:.3} connections={}",
        all.ok, all.connections
    );
}
