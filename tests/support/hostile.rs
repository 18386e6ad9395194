//! Hostile next hops: raw std TCP servers on 127.0.0.1 port 0, each
//! running a script (a closure over one [`Conn`]) that misbehaves in one
//! way: replies too long, malformed, split into single bytes, cut short,
//! never sent. Scripts see the relay's commands line by line and write
//! whatever bytes they like.
//!
//! Once a test has seen what the relay made of the misbehaviour (the
//! reason in the queue state) it calls [`Hostile::behave`]: later
//! connections get a well-behaved server ([`Conn::serve_well`]), so the
//! test sees the relay's retry deliver, the proof that nothing was lost.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a script waits for the relay's next line before giving up:
/// bounds every thread a test starts.
const READ_LIMIT: Duration = Duration::from_secs(20);

/// What every session of one server saw.
#[derive(Default)]
struct Shared {
    connections: usize,
    /// Message contents read up to the end marker, whatever was answered.
    contents: Vec<String>,
    /// Contents a well-behaved session acknowledged with 250.
    delivered: Vec<String>,
    /// Every line the relay sent, in order, across sessions.
    lines: Vec<String>,
    /// Open connections, cut on [`Hostile::stop`].
    streams: Vec<TcpStream>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Hostile {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    good: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hostile {
    /// A server on 127.0.0.1 port 0 running `script` on every connection,
    /// each in its own thread.
    pub fn start(script: impl Fn(&mut Conn) + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let shared: Arc<Mutex<Shared>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let good = Arc::new(AtomicBool::new(false));
        let script = Arc::new(script);
        let thread = {
            let (shared, stop, good) = (shared.clone(), stop.clone(), good.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok((stream, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let Some(mut conn) = Conn::new(stream, shared.clone()) else {
                        continue;
                    };
                    let script = script.clone();
                    let good = good.load(Ordering::SeqCst);
                    std::thread::spawn(move || {
                        match good {
                            true => conn.serve_well(),
                            false => script(&mut conn),
                        }
                        // The end of a script is a hang-up (the copy kept
                        // for [`Hostile::stop`] would hold it open).
                        let _ = conn.stream.shutdown(Shutdown::Both);
                    });
                }
            })
        };
        Hostile {
            addr,
            shared,
            stop,
            good,
            thread: Some(thread),
        }
    }

    /// Connections accepted from now on get [`Conn::serve_well`]; the
    /// hostile ones still open are cut, so the relay's retry comes soon.
    pub fn behave(&self) {
        self.good.store(true, Ordering::SeqCst);
        for stream in lock(&self.shared).streams.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Closes the listener (later connections are refused) and cuts the
    /// connections still open.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        for stream in lock(&self.shared).streams.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn connections(&self) -> usize {
        lock(&self.shared).connections
    }

    /// The contents sessions read up to the end marker, in order.
    pub fn contents(&self) -> Vec<String> {
        lock(&self.shared).contents.clone()
    }

    /// Waits (bounded, 20 s) until `n` contents were acknowledged by a
    /// well-behaved session; all of them.
    pub fn wait_delivered(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let delivered = lock(&self.shared).delivered.clone();
            if delivered.len() >= n {
                return delivered;
            }
            assert!(
                Instant::now() < deadline,
                "{} had {} message(s) delivered, not {n}; lines: {:?}",
                self.addr,
                delivered.len(),
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every command line the relay sent, across sessions.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.shared).lines.clone()
    }

    /// Waits (bounded, 20 s) until `n` connections were accepted.
    pub fn wait_connections(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.connections() < n {
            assert!(
                Instant::now() < deadline,
                "{} saw {} connection(s), not {n}",
                self.addr,
                self.connections()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One connection from the relay, as a script sees it.
pub struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    shared: Arc<Mutex<Shared>>,
    /// When set, [`Conn::send`] writes one byte at a time with this pause.
    bytewise: Option<Duration>,
}

impl Conn {
    fn new(stream: TcpStream, shared: Arc<Mutex<Shared>>) -> Option<Conn> {
        stream.set_nonblocking(false).ok()?;
        stream.set_nodelay(true).ok()?;
        stream.set_read_timeout(Some(READ_LIMIT)).ok()?;
        stream.set_write_timeout(Some(READ_LIMIT)).ok()?;
        let reader = BufReader::new(stream.try_clone().ok()?);
        {
            let mut shared = lock(&shared);
            shared.connections += 1;
            shared.streams.push(stream.try_clone().ok()?);
        }
        Some(Conn {
            stream,
            reader,
            shared,
            bytewise: None,
        })
    }

    /// From now on every write goes out one byte at a time, `pause` apart,
    /// each in its own TCP segment (no Nagle).
    pub fn bytewise(&mut self, pause: Duration) {
        self.bytewise = Some(pause);
    }

    /// Writes `bytes` (one by one in bytewise mode).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.bytewise {
            None => self.stream.write_all(bytes),
            Some(pause) => {
                for byte in bytes {
                    self.stream.write_all(std::slice::from_ref(byte))?;
                    std::thread::sleep(pause);
                }
                Ok(())
            }
        }
    }

    /// The relay's next line without its CRLF; `None` when it hung up (or
    /// sent nothing for 20 s).
    pub fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let line = line.trim_end_matches(['\r', '\n']).to_string();
                lock(&self.shared).lines.push(line.clone());
                Some(line)
            }
        }
    }

    /// Reads the next line and checks it starts with `verb`; `None` when
    /// the relay hung up or said something else (QUIT, for example).
    pub fn expect(&mut self, verb: &str) -> Option<String> {
        let line = self.line()?;
        line.to_ascii_uppercase().starts_with(verb).then_some(line)
    }

    /// Greeting, then `ehlo` (a complete reply) to the EHLO.
    pub fn hello(&mut self, ehlo: &[u8]) -> Option<()> {
        self.send(b"220 hostile.test ESMTP\r\n").ok()?;
        self.expect("EHLO")?;
        self.send(ehlo).ok()
    }

    /// Greeting, a plain EHLO (no PIPELINING, no STARTTLS), then 250 to
    /// MAIL and to one RCPT: the relay's next line is `DATA`.
    pub fn until_data(&mut self) -> Option<()> {
        self.hello(b"250-hostile.test\r\n250 8BITMIME\r\n")?;
        self.expect("MAIL")?;
        self.send(b"250 2.1.0 ok\r\n").ok()?;
        self.expect("RCPT")?;
        self.send(b"250 2.1.5 ok\r\n").ok()
    }

    /// [`Conn::until_data`], DATA answered `354`, and the content read up to
    /// the end marker (recorded in [`Hostile::contents`]).
    pub fn through_end_of_data(&mut self) -> Option<String> {
        self.until_data()?;
        self.expect("DATA")?;
        self.send(b"354 go ahead\r\n").ok()?;
        self.content()
    }

    /// The content up to the end marker `.` (dot-unstuffed), recorded.
    pub fn content(&mut self) -> Option<String> {
        let mut content = String::new();
        loop {
            let line = self.line()?;
            if line == "." {
                break;
            }
            content.push_str(line.strip_prefix('.').unwrap_or(&line));
            content.push_str("\r\n");
        }
        lock(&self.shared).contents.push(content.clone());
        Some(content)
    }

    /// A well-behaved server (PIPELINING, 250 to everything, 354 to
    /// DATA, 250 after the content, recorded as delivered), in bytewise
    /// mode if set.
    pub fn serve_well(&mut self) {
        let _ = self.dialogue(b"");
    }

    /// [`Conn::serve_well`], with `surplus` sent after each 250 to the
    /// end of data (a second reply nobody asked for).
    pub fn serve_with_surplus(&mut self, surplus: &[u8]) {
        let _ = self.dialogue(surplus);
    }

    fn dialogue(&mut self, surplus: &[u8]) -> Option<()> {
        self.send(
            b"220 hostile.test ESMTP ready
",
        )
        .ok()?;
        loop {
            let line = self.line()?;
            let reply: &[u8] = match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                "EHLO" => b"250-hostile.test greets you\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n",
                "MAIL" => b"250 2.1.0 sender ok\r\n",
                "RCPT" => b"250 2.1.5 recipient ok\r\n",
                "RSET" | "NOOP" => b"250 2.0.0 ok\r\n",
                "DATA" => {
                    self.send(b"354 end with <CRLF>.<CRLF>\r\n").ok()?;
                    let content = self.content()?;
                    self.send(b"250 2.0.0 queued\r\n").ok()?;
                    lock(&self.shared).delivered.push(content);
                    self.send(surplus).ok()?;
                    continue;
                }
                "QUIT" => {
                    let _ = self.send(b"221 2.0.0 bye\r\n");
                    return Some(());
                }
                _ => b"502 5.5.2 unknown command\r\n",
            };
            self.send(reply).ok()?;
        }
    }

    /// Stops reading (and writing): the relay's writes fill the socket
    /// buffers and must be cut by its own deadline. Sleeps, bounded by
    /// the read limit, then hangs up.
    pub fn stall(&mut self) {
        std::thread::sleep(READ_LIMIT);
    }

    /// Silence: reads and discards until the relay hangs up (bounded).
    pub fn hold(&mut self) {
        let mut sink = [0u8; 4096];
        let deadline = Instant::now() + READ_LIMIT;
        while Instant::now() < deadline {
            match self.reader.read(&mut sink) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Writes `unit` over and over, never ending the reply, until the
    /// relay hangs up or `cap` bytes are out; how many bytes went out.
    pub fn flood(&mut self, unit: &[u8], cap: usize) -> usize {
        let mut sent = 0;
        while sent < cap && self.stream.write_all(unit).is_ok() {
            sent += unit.len();
        }
        sent
    }
}
