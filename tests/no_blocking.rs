//! No task blocks the runtime while the queue works (issue 14, item 4).
//!
//! The queue manager runs on a current-thread runtime, as one of many
//! tasks sharing a thread, over a spool of two thousand messages: it
//! recovers them, attempts them all (a delivery that defers everyone, so
//! each attempt reads its message and saves its state), and carries out
//! `hold --all`, `release --all` and `delete --all`, which select every
//! message by reading its envelope and then change its state or remove
//! it. Two measures of the runtime's thread, both from the kernel:
//!
//! * a watchdog task wakes every millisecond and records the most CPU
//!   time the thread spent between two of its wake-ups, in whatever tasks
//!   ran meanwhile. CPU time, not wall-clock lateness: on a shared 2-core
//!   machine the thread also waits for a CPU, or for a lock the blocking
//!   pool's threads hold, for tens of milliseconds, which no task of ours
//!   causes (measured: a pure `spawn_blocking` file load made a 1 ms sleep
//!   wake 170 ms late, with under 4 ms of the thread's own CPU);
//! * the bytes the thread read and wrote through system calls over the
//!   whole run (Linux task I/O accounting): its wake-ups, never a file.
//!
//! Before the queue's file work went to the blocking pool, the thread was
//! busy for 3.9 s in one stretch and moved 51 MB; after, 18 ms (the
//! board's bookkeeping for 2000 messages at once, in a debug build) and
//! 40 KB.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tlsrelay::config::Config;
use tlsrelay::queue::body::Body;
use tlsrelay::queue::bulk::{Action, Filter, Selection};
use tlsrelay::queue::control::{Command, Request, Response};
use tlsrelay::queue::delivery::{Delivery, RecipientOutcome, Verdict};
use tlsrelay::queue::envelope::{Envelope, Recipient};
use tlsrelay::queue::finish::Notices;
use tlsrelay::queue::manager::QueueManager;
use tlsrelay::queue::schedule::Schedule;
use tlsrelay::queue::spool::Spool;
use tlsrelay::queue::state::StateStore;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Messages in the spool at start.
const MESSAGES: usize = 2000;

/// The most CPU time the runtime thread may spend between two watchdog
/// ticks. The queue's own work on the thread (the board, a thousand
/// turns at once) stays well under it; reading or writing the spool's
/// files on the thread costs tens of microseconds per message, so
/// selecting every message of this spool there costs far more.
const MAX_BUSY: Duration = Duration::from_millis(25);

/// The most the runtime thread may read and write through system calls
/// in the whole run: its wake-ups, never the spool. Reading every message
/// once on the thread would be [`MESSAGES`] × 4.4 KB = 8.8 MB.
const MAX_THREAD_IO: u64 = 1 << 20;

/// CPU time this thread has used so far, system calls included. Unlike
/// wall-clock lateness it does not count the time a busy shared machine
/// keeps the thread waiting for a CPU, or blocking-pool threads keep it
/// waiting for a lock: only work the thread itself did.
fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `now` is.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } == 0;
    match ok {
        true => Duration::new(now.tv_sec as u64, now.tv_nsec as u32),
        false => Duration::ZERO,
    }
}

/// Bytes this thread has read and written through system calls so far
/// (Linux task I/O accounting: files, but also the runtime's own eventfd
/// wake-ups, 8 bytes each).
fn thread_io() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/io").unwrap_or_default();
    text.lines()
        .filter_map(|line| match line.split_once(": ") {
            Some(("rchar" | "wchar", n)) => n.trim().parse::<u64>().ok(),
            _ => None,
        })
        .sum()
}

/// A delivery that defers every recipient at once, without a network.
struct Deferring;

impl Delivery for Deferring {
    fn attempt<'a>(
        &'a self,
        _id: &'a str,
        _envelope: &'a Envelope,
        _content: &'a Body,
        pending: &'a [&'a Recipient],
    ) -> impl Future<Output = Vec<RecipientOutcome>> + Send + 'a {
        let outcomes = pending
            .iter()
            .map(|r| RecipientOutcome {
                address: r.address.clone(),
                verdict: Verdict::deferred(
                    tlsrelay::smtp::status::EnhancedStatus::NO_ANSWER,
                    "test: try again later",
                ),
                remote_mta: None,
                ip: None,
                tls: None,
            })
            .collect();
        std::future::ready(outcomes)
    }

    fn sweep_idle(&self) {}
}

/// Writes `count` committed messages straight into `dir/queue`, in the
/// spool's format (no fsync: the test needs no durability).
fn fill_spool(dir: &Path, count: usize) {
    let queue = dir.join("queue");
    std::fs::create_dir_all(&queue).expect("queue folder");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let content = "Subject: test\r\n\r\n".to_string() + &"body line\r\n".repeat(400);
    for n in 0..count {
        let envelope = Envelope {
            sender: "sender@example.test".into(),
            recipients: vec![Recipient {
                address: format!("r{n}@example.test"),
                orcpt: None,
                notify: None,
            }],
            received_at: now,
            ..Envelope::default()
        };
        let head = serde_json::to_string(&envelope).expect("envelope");
        let file = format!("tlsrelay-spool 1\n{head}\n{content}");
        std::fs::write(queue.join(format!("{n:018X}")), file).expect("message file");
    }
}

/// Sends a request to the manager and waits (bounded) for its answer.
async fn ask(commands: &mpsc::UnboundedSender<Command>, request: Request) -> Response {
    let (reply, answer) = oneshot::channel();
    commands.send((request, reply)).expect("manager running");
    tokio::time::timeout(Duration::from_secs(120), answer)
        .await
        .expect("answered in time")
        .expect("an answer")
}

/// How many files `folder` holds, counted on the blocking pool (the test
/// must not block the thread it measures either).
async fn files(folder: &Path) -> usize {
    let folder = folder.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::read_dir(folder).map_or(0, |d| d.count()))
        .await
        .unwrap_or(0)
}

/// How many queued messages have a delivery state (were attempted).
async fn attempted(states: &StateStore, spool: &Spool) -> usize {
    let (states, spool) = (states.clone(), spool.clone());
    tokio::task::spawn_blocking(move || {
        let ids = spool.list().unwrap_or_default();
        ids.iter().filter(|id| states.load(id).is_some()).count()
    })
    .await
    .unwrap_or(0)
}

fn bulk(action: Action) -> Request {
    Request::Bulk {
        action,
        selection: Selection::Matching(Filter::default()),
    }
}

#[test]
fn the_queue_never_blocks_the_runtime_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(queue_under_load());
}

async fn queue_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill_spool(dir.path(), MESSAGES);
    let config = Config::parse(
        &dir.path().join("tlsrelay.toml"),
        "[server]\nhostname = \"relay.example.test\"\n[queue]\nretry_intervals = [\"1h\"]\n".into(),
    )
    .expect("config");
    let spool_dir = dir.path().to_path_buf();
    let (spool, states) = tokio::task::spawn_blocking(move || {
        let spool = Spool::open(&spool_dir).expect("spool");
        let states = StateStore::new(&spool);
        (spool, states)
    })
    .await
    .expect("opened");

    // The relay seeds its random numbers at start (`Daemon::start`): the
    // first draw in a process costs aws-lc tens of milliseconds of CPU.
    tlsrelay::random::u64();
    let io_before = thread_io();
    // The watchdog: the most CPU time the runtime's thread spent between
    // two of its 1 ms ticks, that is, in the tasks polled in between.
    let worst = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let watchdog = {
        let (worst, stop) = (worst.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let before = thread_cpu();
                tokio::time::sleep(Duration::from_millis(1)).await;
                let busy = thread_cpu().saturating_sub(before);
                worst.fetch_max(busy.as_micros() as u64, Ordering::Relaxed);
            }
        })
    };
    tokio::task::yield_now().await;

    let notices = Notices {
        hostname: "relay.example.test".into(),
        return_limit: 1 << 20,
    };
    let watch = states.clone();
    let manager = QueueManager::new(
        spool.clone(),
        states,
        Schedule::new(&config.queue),
        Deferring,
        notices,
    );
    let commands = manager.commands();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(manager.run(shutdown.clone()));

    // Every message attempted once (deferred: a state each).
    let deadline = Instant::now() + Duration::from_secs(120);
    while attempted(&watch, &spool).await < MESSAGES {
        assert!(Instant::now() < deadline, "not every message was attempted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = ask(&commands, bulk(Action::Hold)).await;
    assert!(held.ok, "{held:?}");
    let released = ask(&commands, bulk(Action::Release)).await;
    assert!(released.ok, "{released:?}");
    let deleted = ask(&commands, bulk(Action::Delete)).await;
    assert!(deleted.ok, "{deleted:?}");
    // Messages being attempted during the delete go when their attempt ends.
    let queue = dir.path().join("queue");
    while files(&queue).await > 0 {
        assert!(Instant::now() < deadline, "the queue did not empty");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the manager stopped")
        .expect("the manager ran");
    stop.cancel();
    watchdog.await.expect("watchdog");
    let io = thread_io().saturating_sub(io_before);
    let worst = Duration::from_micros(worst.load(Ordering::Relaxed));
    eprintln!(
        "longest stretch of work on the runtime thread: {worst:?}; bytes it read and wrote: {io}"
    );
    assert!(
        io < MAX_THREAD_IO,
        "the runtime thread read and wrote {io} bytes (at most {MAX_THREAD_IO} allowed)"
    );
    assert!(
        worst < MAX_BUSY,
        "the runtime thread was busy for {worst:?} between two ticks (at most {MAX_BUSY:?} allowed)"
    );
}
