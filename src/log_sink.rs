//! Where log lines go: a bounded queue and one writer thread, so that
//! logging never stops mail (DESIGN.md §7).
//!
//! tracing's fmt layer writes each event with one blocking `write_all` on
//! the thread that emits it. With `serve 2>&1 | reader`, a reader that
//! stalls fills the pipe and that write blocks a runtime worker for good
//! (every worker, soon: no more `250`s, deliveries or SIGTERM); a reader
//! that is gone makes the write fail with EPIPE, and the fmt layer then
//! reports it with `eprintln!`, which panics on the same broken stderr,
//! killing the task that logged (a session before its `250`, the signal
//! handler). Here an event's formatted line is handed to the writer
//! thread with a non-blocking send; when the queue is full (the output is
//! slow or stuck) or the write fails (the output is gone), the line is
//! dropped and counted in `tlsrelay_log_lines_dropped_total`, never
//! retried, never a panic.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Lines waiting for the writer thread; past this they are dropped.
pub const QUEUE_LINES: usize = 2048;

enum Message {
    Line(Vec<u8>),
    /// Flush the output, then answer.
    Flush(SyncSender<()>),
}

/// The tracing writer: each event becomes one [`Line`] sent to the writer
/// thread. Cheap to share; every subscriber thread uses the same one.
#[derive(Clone)]
pub struct LogSink {
    queue: SyncSender<Message>,
}

impl LogSink {
    /// A sink whose lines `output` receives on a thread of its own, at most
    /// `capacity` of them waiting.
    pub fn start(output: impl Write + Send + 'static, capacity: usize) -> io::Result<LogSink> {
        let (queue, lines) = mpsc::sync_channel(capacity);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_lines(output, lines))?;
        Ok(LogSink { queue })
    }

    /// Waits at most `within` for the lines queued so far to be written
    /// and flushed (before the process exits); false when they were not.
    pub fn flush(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let (done, answer) = mpsc::sync_channel(1);
        let mut message = Message::Flush(done);
        loop {
            match self.queue.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    message = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TrySendError::Full(_)) => return false,
            }
        }
        answer
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    fn send(&self, line: Vec<u8>) {
        if self.queue.try_send(Message::Line(line)).is_err() {
            crate::metrics::log_line_dropped();
        }
    }
}

/// How long the writer pauses after each write. Lines logged meanwhile
/// wait in the queue and go out together in the next write; a sender
/// whose line finds the writer pausing or writing wakes nobody. Without
/// the pause every line woke the writer thread (a futex call for the
/// logging thread, a context switch for the writer): a fifth of the
/// relay's CPU in W1, four lines a message (BENCHMARKS.md, issue 18).
/// A line waits at most this long plus one write.
const PAUSE: Duration = Duration::from_millis(2);

/// At most about this many bytes go in one write.
const BATCH_BYTES: usize = 64 * 1024;

/// The writer thread: takes every line waiting, writes them with one
/// `write_all`, pauses, and blocks for the next line only when none came
/// meanwhile. A failed write drops its lines (counted) and the next batch
/// is tried all the same, so output that comes back (a restarted
/// collector on a FIFO) is used again.
fn write_lines(mut output: impl Write, lines: Receiver<Message>) {
    let mut batch = Batch::default();
    while let Ok(first) = lines.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Line(line) => {
                    batch.add(&line);
                    if batch.bytes.len() >= BATCH_BYTES {
                        batch.write(&mut output);
                    }
                }
                Message::Flush(done) => {
                    batch.write(&mut output);
                    let _ = output.flush();
                    let _ = done.send(());
                }
            }
            next = lines.try_recv().ok();
        }
        batch.write(&mut output);
        std::thread::sleep(PAUSE);
    }
}

/// Lines taken from the queue and not yet written.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    lines: u64,
}

impl Batch {
    fn add(&mut self, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.lines += 1;
    }

    fn write(&mut self, output: &mut impl Write) {
        if self.lines > 0 && output.write_all(&self.bytes).is_err() {
            crate::metrics::log_lines_dropped(self.lines);
        }
        self.bytes.clear();
        self.lines = 0;
    }
}

/// One event's bytes, sent as one line when tracing drops the writer.
pub struct Line<'a> {
    sink: &'a LogSink,
    bytes: Vec<u8>,
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if !self.bytes.is_empty() {
            self.sink.send(std::mem::take(&mut self.bytes));
        }
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            sink: self,
            bytes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// An output that fails every write, like a pipe whose reader is gone.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    /// An output that blocks until `open`, like a full pipe nobody reads.
    struct Stuck {
        open: Arc<Mutex<()>>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _wait = self.open.lock();
            if let Ok(mut written) = self.written.lock() {
                written.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn dropped() -> f64 {
        let text = crate::metrics::render();
        text.lines()
            .find_map(|l| l.strip_prefix("tlsrelay_log_lines_dropped_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    fn log(sink: &LogSink, text: &str) {
        let mut line = sink.make_writer();
        let _ = line.write_all(text.as_bytes());
    }

    // One test, as the counter is process-wide.
    #[test]
    fn a_broken_or_stuck_output_drops_lines_without_blocking_or_panicking() {
        let sink = LogSink::start(Broken, 4).unwrap_or_else(|e| panic!("{e}"));
        let before = dropped();
        for i in 0..100 {
            log(&sink, &format!("line {i}\n"));
        }
        assert!(sink.flush(Duration::from_secs(5)));
        assert_eq!(dropped() - before, 100.0, "each line dropped once");

        let open = Arc::new(Mutex::new(()));
        let written = Arc::new(Mutex::new(Vec::new()));
        let gate = open.lock().unwrap_or_else(|e| e.into_inner());
        let output = Stuck {
            open: open.clone(),
            written: written.clone(),
        };
        let sink = LogSink::start(output, 4).unwrap_or_else(|e| panic!("{e}"));
        let before = dropped();
        let started = Instant::now();
        for i in 0..100 {
            log(&sink, &format!("line {i}\n"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "logging blocked"
        );
        // One line is held by the stuck write, 4 wait; the rest are dropped.
        assert!(dropped() - before >= 90.0, "{}", dropped() - before);
        assert!(
            !sink.flush(Duration::from_millis(200)),
            "flushed while stuck"
        );
        drop(gate);
        assert!(sink.flush(Duration::from_secs(5)));
        let text = String::from_utf8(written.lock().map(|w| w.clone()).unwrap_or_default())
            .unwrap_or_default();
        assert!(text.starts_with("line 0\nline 1\n"), "{text}");
    }
}
