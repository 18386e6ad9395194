//! DESIGN.md §4 under crashes: "250 after DATA means the message is on
//! stable storage … a crash at any moment loses no acknowledged message; a
//! message that was not acknowledged leaves no trace after recovery".
//!
//! Many client threads send mail over plain SMTP while the relay is
//! SIGKILLed at random moments and restarted on the same spool. Clients
//! behave like real MTAs: they reconnect and send again what was not
//! acknowledged. Each client remembers, per message and per attempt,
//! whether it saw `250 … queued as ID`, whether the end of data went out
//! with no reply (the relay died between its commit and our read: the
//! RFC 1047 window, where a copy may legitimately remain), or whether the
//! message was not sent completely (must leave no trace). Now and then a
//! client also hangs up in the middle of the content on its own, up to
//! the last byte before the final LF, as a crashing client would. After a
//! clean restart the spool is compared with those records.
//!
//! A SIGKILL loses no page cache, so this checks the protocol order
//! (content complete before the rename, rename before `250`, `.tmp`
//! leftovers removed at start), not the fsyncs themselves.
//!
//! The seed is printed; `TLSRELAY_CRASH_SEED=N cargo test --test
//! crash_safety -- --nocapture` replays the same messages, kill points and
//! client choices (thread timing still varies).

mod support;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::relay::{base_config, Relay};

const CLIENTS: usize = 200;
const MESSAGES_PER_CLIENT: usize = 5;
const KILLS: usize = 5;
/// Clients give up after this; the whole test stays well under a minute.
const CLIENT_DEADLINE: Duration = Duration::from_secs(45);
/// Past the spool's in-memory limit (256 KiB), so that path crashes too.
const LARGE: usize = 270_000;
/// One attempt in this many hangs up partway through the content.
const ABANDON_ONE_IN: usize = 25;

#[test]
fn sigkill_loses_no_acknowledged_message_and_keeps_no_unacknowledged_one() {
    let seed = std::env::var("TLSRELAY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("crash_safety seed {seed} (replay with TLSRELAY_CRASH_SEED={seed})");
    let started = Instant::now();
    let config = base_config().replace(
        "[server]\n",
        "[server]\nmax_connections_per_ip = 1000\nmax_connections = 1000\n",
    );
    let mut relay = Relay::start_with(&config);

    let shared = Arc::new(Shared {
        port: AtomicU16::new(relay.smtp.port()),
        acknowledged: AtomicUsize::new(0),
        in_transaction: AtomicUsize::new(0),
        clients_done: AtomicUsize::new(0),
    });
    let deadline = Instant::now() + CLIENT_DEADLINE;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let shared = shared.clone();
            thread::Builder::new()
                .name(format!("client-{client}"))
                .spawn(move || {
                    let records = run_client(seed, client, &shared, deadline);
                    shared.clients_done.fetch_add(1, Ordering::SeqCst);
                    records
                })
                .expect("spawn client thread")
        })
        .collect();

    // Kill at random points of the run: when the acknowledged count passes
    // a random threshold, after a random few milliseconds more.
    let total = CLIENTS * MESSAGES_PER_CLIENT;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut thresholds: Vec<usize> = (0..KILLS)
        .map(|_| rng.usize(total / 20..total * 17 / 20))
        .collect();
    thresholds.sort_unstable();
    let mut kills = 0;
    for threshold in thresholds {
        while shared.acknowledged.load(Ordering::SeqCst) < threshold
            && shared.clients_done.load(Ordering::SeqCst) < CLIENTS
        {
            thread::sleep(Duration::from_millis(1));
        }
        if shared.clients_done.load(Ordering::SeqCst) == CLIENTS {
            break;
        }
        thread::sleep(Duration::from_micros(rng.u64(0..20_000)));
        let mid = shared.in_transaction.load(Ordering::SeqCst);
        relay.kill();
        kills += 1;
        let acknowledged = shared.acknowledged.load(Ordering::SeqCst);
        thread::sleep(Duration::from_millis(rng.u64(0..50)));
        let down = Instant::now();
        relay.launch();
        shared.port.store(relay.smtp.port(), Ordering::SeqCst);
        println!(
            "kill {kills}: {acknowledged} acknowledged, {mid} clients mid-transaction, \
             restarted in {} ms",
            down.elapsed().as_millis()
        );
    }
    let (records, refusals): (Vec<Vec<Record>>, Vec<Vec<String>>) = clients
        .into_iter()
        .map(|c| c.join().expect("client thread panicked"))
        .unzip();
    // Crashes cut connections; they must never make the relay say no.
    let refusals: Vec<String> = refusals.into_iter().flatten().collect();
    assert!(refusals.is_empty(), "refused: {refusals:?}");
    assert_eq!(kills, KILLS, "the clients finished before every kill");

    // A clean restart, so recovery has run over the last crash's spool too.
    assert!(relay.terminate().success(), "{}", relay.log());
    relay.launch();

    let mut unfinished = Vec::new();
    let mut window = 0;
    let mut incomplete = 0;
    let mut abandoned = 0;
    for (client, messages) in records.iter().enumerate() {
        for (n, record) in messages.iter().enumerate() {
            if record.acknowledged.is_none() {
                unfinished.push(format!("{client}.{n}"));
            }
            window += record.window;
            incomplete += record.incomplete;
            abandoned += record.abandoned;
        }
    }
    assert!(
        unfinished.is_empty(),
        "messages never acknowledged within {CLIENT_DEADLINE:?}: {unfinished:?}"
    );

    let copies = check_spool(&relay, seed);
    let mut window_copies = 0;
    let mut duplicates = Vec::new();
    for (client, messages) in records.iter().enumerate() {
        for (n, record) in messages.iter().enumerate() {
            let ids = copies.get(&(client, n)).map_or(&[][..], Vec::as_slice);
            let acknowledged = record.acknowledged.as_deref().unwrap_or_default();
            assert!(
                ids.iter().any(|id| id == acknowledged),
                "message {client}.{n} was acknowledged as {acknowledged} but the spool has it \
                 under {ids:?}"
            );
            let extra = ids.len() as u32 - 1;
            assert!(
                extra <= record.window,
                "message {client}.{n} is spooled as {ids:?} but only {acknowledged} was \
                 acknowledged, and {} of its attempts ended the data without a reply \
                 (the others were never sent completely: {})",
                record.window,
                record.incomplete
            );
            window_copies += extra;
            if extra > 0 {
                duplicates.push(format!("{client}.{n}: {ids:?}"));
            }
        }
    }
    println!(
        "{total} messages acknowledged, {kills} kills, {incomplete} attempts cut before the end \
         of data ({abandoned} by the client hanging up), {window} ended the data with no reply \
         (RFC 1047 window), {window_copies} of those were committed and are spooled as \
         duplicates, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for duplicate in &duplicates {
        println!("duplicate {duplicate}");
    }
}

struct Shared {
    /// The relay's current listener port (it changes at every restart).
    port: AtomicU16,
    acknowledged: AtomicUsize,
    in_transaction: AtomicUsize,
    clients_done: AtomicUsize,
}

/// What happened to one message, over all its attempts.
#[derive(Default)]
struct Record {
    /// The id of the `250 … queued as ID`.
    acknowledged: Option<String>,
    /// Attempts that sent the whole content and its `.` but got no reply.
    window: u32,
    /// Attempts cut before the end of data was sent completely.
    incomplete: u32,
    /// Of those, the ones where the client hung up on its own.
    abandoned: u32,
}

/// How one attempt at one message ended.
enum Attempt {
    Acknowledged(String),
    NoReply,
    Incomplete,
    Abandoned,
}

/// Sends `client`'s messages in order, reconnecting after every failure,
/// until all are acknowledged or `deadline` passes. Also returns the
/// replies that refused something, which a crash must never cause.
fn run_client(
    seed: u64,
    client: usize,
    shared: &Shared,
    deadline: Instant,
) -> (Vec<Record>, Vec<String>) {
    let mut rng = fastrand::Rng::with_seed(seed ^ ((client as u64 + 1) << 32));
    let mut refusals = Vec::new();
    let mut records: Vec<Record> = (0..MESSAGES_PER_CLIENT)
        .map(|_| Record::default())
        .collect();
    let mut next = 0;
    while next < MESSAGES_PER_CLIENT && Instant::now() < deadline {
        let addr = SocketAddr::from(([127, 0, 0, 1], shared.port.load(Ordering::SeqCst)));
        let mut conn = match Conn::open(addr, client) {
            Ok(conn) => conn,
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    refusals.push(e.to_string());
                }
                thread::sleep(Duration::from_millis(rng.u64(5..30)));
                continue;
            }
        };
        for _ in 0..rng.usize(1..=3) {
            if next == MESSAGES_PER_CLIENT {
                break;
            }
            let message = Message::new(seed, client, next);
            shared.in_transaction.fetch_add(1, Ordering::SeqCst);
            let attempt = conn.transaction(&message, &mut rng);
            shared.in_transaction.fetch_sub(1, Ordering::SeqCst);
            let record = &mut records[next];
            match attempt {
                Ok(Attempt::Acknowledged(id)) => {
                    record.acknowledged = Some(id);
                    shared.acknowledged.fetch_add(1, Ordering::SeqCst);
                    next += 1;
                    continue;
                }
                Ok(Attempt::NoReply) => record.window += 1,
                Ok(Attempt::Incomplete) => record.incomplete += 1,
                Ok(Attempt::Abandoned) => {
                    record.incomplete += 1;
                    record.abandoned += 1;
                }
                Err(e) => {
                    record.incomplete += 1;
                    if e.kind() == io::ErrorKind::InvalidData {
                        refusals.push(e.to_string());
                    }
                }
            }
            break;
        }
        let _ = conn.send(b"QUIT\r\n");
    }
    (records, refusals)
}

/// One test message; everything follows from (seed, client, n).
struct Message {
    sender: String,
    recipients: Vec<String>,
    /// The content as the relay must store it (not dot-stuffed).
    content: Vec<u8>,
}

impl Message {
    fn new(seed: u64, client: usize, n: usize) -> Message {
        let index = client * MESSAGES_PER_CLIENT + n;
        let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(index as u64 + 1));
        // Unique sizes: small ones below 41 KB, one in twelve past LARGE.
        let size = 41 * index + if rng.usize(0..12) == 0 { LARGE } else { 400 };
        let mut content = format!(
            "Message-ID: <{client}.{n}.{seed}@crash.test>\r\nSubject: {size} bytes\r\n\r\n"
        )
        .into_bytes();
        // Lines of up to 100 printable characters, some starting with '.',
        // then one last line that lands on `size` exactly.
        while size - content.len() > 104 {
            let length = rng.usize(0..=100);
            content.extend((0..length).map(|_| rng.u8(b' '..=b'~')));
            content.extend_from_slice(b"\r\n");
        }
        let last = size - content.len() - 2;
        content.extend((0..last).map(|_| rng.u8(b'0'..=b'z')));
        content.extend_from_slice(b"\r\n");
        let recipients = (0..rng.usize(1..=3))
            .map(|r| format!("u{client}-{n}-{r}@example.test"))
            .collect();
        Message {
            sender: format!("c{client}@sender.test"),
            recipients,
            content,
        }
    }

    /// The DATA stream: dot-stuffed (RFC 5321 §4.5.2), then `.` CRLF.
    fn wire(&self) -> Vec<u8> {
        let mut wire = Vec::with_capacity(self.content.len() + 1024);
        for line in self.content.split_inclusive(|&b| b == b'\n') {
            if line.first() == Some(&b'.') {
                wire.push(b'.');
            }
            wire.extend_from_slice(line);
        }
        wire.extend_from_slice(b".\r\n");
        wire
    }

    /// Which message a spooled content is: its Message-ID's client and number.
    fn identify(content: &[u8], seed: u64) -> Option<(usize, usize)> {
        let rest = content.strip_prefix(b"Message-ID: <")?;
        let end = rest.iter().position(|&b| b == b'@')?;
        let token = std::str::from_utf8(&rest[..end]).ok()?;
        let mut parts = token.split('.');
        let client = parts.next()?.parse().ok()?;
        let n = parts.next()?.parse().ok()?;
        let from_seed: u64 = parts.next()?.parse().ok()?;
        (from_seed == seed && client < CLIENTS && n < MESSAGES_PER_CLIENT).then_some((client, n))
    }
}

/// A plain SMTP client that reports I/O failures instead of panicking:
/// here they are the point.
struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr, client: usize) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        let reader = BufReader::new(stream.try_clone()?);
        let mut conn = Conn { stream, reader };
        conn.expect(None, "220")?;
        conn.expect(Some(&format!("EHLO client{client}.test")), "250")?;
        Ok(conn)
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// One whole reply; a connection that ends mid-line is an error.
    fn reply(&mut self) -> io::Result<String> {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            if !line.ends_with("\r\n") {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(reply);
            }
        }
    }

    /// Sends `line` (if any), reads the reply, and wants it to start with `code`.
    fn expect(&mut self, line: Option<&str>, code: &str) -> io::Result<String> {
        if let Some(line) = line {
            self.send(format!("{line}\r\n").as_bytes())?;
        }
        let reply = self.reply()?;
        if reply.starts_with(code) {
            Ok(reply)
        } else {
            Err(refused(&format!("{line:?}: wanted {code}, got {reply:?}")))
        }
    }

    /// MAIL, RCPT, DATA and the content in random pieces; the outcome.
    fn transaction(&mut self, message: &Message, rng: &mut fastrand::Rng) -> io::Result<Attempt> {
        self.expect(Some(&format!("MAIL FROM:<{}>", message.sender)), "250")?;
        for recipient in &message.recipients {
            self.expect(Some(&format!("RCPT TO:<{recipient}>")), "250")?;
        }
        self.expect(Some("DATA"), "354")?;
        let wire = message.wire();
        // A client that gives up partway: at a random byte, or just
        // before the final LF, the most tempting one to mistake for the end.
        let cut = match rng.usize(0..ABANDON_ONE_IN * 2) {
            0 => wire.len() - 1,
            1 => rng.usize(0..wire.len()),
            _ => wire.len(),
        };
        let mut rest = &wire[..cut];
        while !rest.is_empty() {
            let piece = rest.len().min(rng.usize(1..=65_536));
            if self.send(&rest[..piece]).is_err() {
                // The final LF was not written: the relay never saw CRLF.CRLF.
                return Ok(Attempt::Incomplete);
            }
            rest = &rest[piece..];
        }
        if cut < wire.len() {
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
            return Ok(Attempt::Abandoned);
        }
        let Ok(reply) = self.reply() else {
            return Ok(Attempt::NoReply);
        };
        match reply.strip_prefix("250 2.0.0 Ok: queued as ") {
            Some(id) => Ok(Attempt::Acknowledged(id.trim_end().to_string())),
            None => Err(refused(&format!("end of data: {reply:?}"))),
        }
    }
}

/// A reply we did not expect, told apart from I/O errors by its kind.
fn refused(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads every file in the spool; each must be a complete committed
/// message of ours, byte for byte. Returns the ids of each message's copies.
fn check_spool(relay: &Relay, seed: u64) -> HashMap<(usize, usize), Vec<String>> {
    let queue = relay.dir().join("spool/queue");
    for entry in std::fs::read_dir(&queue).expect("read the spool folder") {
        let name = entry.expect("spool folder entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            !name.ends_with(".tmp") && !name.starts_with('.'),
            "{name} is left in the spool after the restart"
        );
    }
    let view = tlsrelay::queue::spool::SpoolView::open(&relay.dir().join("spool"))
        .expect("read the spool");
    let mut copies: HashMap<(usize, usize), Vec<String>> = HashMap::new();
    for name in view.ids().expect("the spool's messages") {
        let (envelope, content) = view
            .read(&name)
            .unwrap_or_else(|e| panic!("spooled {name}: {e}"));
        let body = strip_received(&content, &name);
        let (client, n) = Message::identify(body, seed).unwrap_or_else(|| {
            panic!(
                "spooled {name} is not one of our messages: {:?}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )
        });
        let expected = Message::new(seed, client, n);
        if body != expected.content {
            let at = body
                .iter()
                .zip(&expected.content)
                .position(|(a, b)| a != b)
                .unwrap_or(body.len().min(expected.content.len()));
            panic!(
                "spooled {name} (message {client}.{n}) has {} bytes of content, sent {}; \
                 first difference at byte {at}",
                body.len(),
                expected.content.len()
            );
        }
        assert_eq!(envelope.sender, expected.sender, "spooled {name}");
        let recipients: Vec<&str> = envelope
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(recipients, expected.recipients, "spooled {name}");
        assert_eq!(envelope.client.helo, format!("client{client}.test"));
        copies.entry((client, n)).or_default().push(name);
    }
    copies
}

/// The content after our `Received:` header, which must name `id`.
fn strip_received<'a>(content: &'a [u8], id: &str) -> &'a [u8] {
    assert!(
        content.starts_with(b"Received: "),
        "spooled {id} does not start with our Received header"
    );
    let mut end = 0;
    loop {
        let line_end = content[end..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(content.len(), |p| end + p + 1);
        end = line_end;
        if !matches!(content.get(end), Some(b' ' | b'\t')) {
            break;
        }
    }
    let header = String::from_utf8_lossy(&content[..end]);
    assert!(
        header.contains(&format!(" id {id}")),
        "spooled {id}: {header}"
    );
    &content[end..]
}
