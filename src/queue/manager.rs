//! The queue manager: every message in the spool is scheduled, attempted,
//! rescheduled or finished (DESIGN.md §6). At start every committed
//! message is scheduled again (recovery); new ones arrive from the
//! inbound side through [`QueueHandle::queued`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::blocking;

mod attempt;
mod board;
mod commands;
mod due;

use super::backlog::Backlog;
use super::bulk::{Action, Selection};
use super::control::{Command, Response};
use super::delivery::Delivery;
use super::finish::{Finisher, Notices};
use super::handle::QueueHandle;
use super::schedule::Schedule;
use super::spool::{Spool, SpoolError, Summary};
use super::state::StateStore;
use crate::current::Current;
use attempt::Worker;
use board::Board;
use commands::After;

/// How long a message the disk would not give back waits before the next try.
const READ_RETRY_SECONDS: i64 = 60;

/// How many messages are attempted at once.
const CONCURRENCY: usize = 64;

pub struct QueueManager<D> {
    spool: Spool,
    states: StateStore,
    /// The outbound side; a reload replaces it, attempts keep theirs.
    worker: Current<Worker<D>>,
    receiver: mpsc::UnboundedReceiver<String>,
    handle: QueueHandle,
    commands: mpsc::UnboundedReceiver<Command>,
    command_sender: mpsc::UnboundedSender<Command>,
    shutdown_grace: Duration,
}

/// Unix seconds now.
fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Messages whose turn is over (an attempt, an administrator's request
/// carried out in a task), what each came to, and the answer to give
/// once the board knows.
struct Done {
    turns: Vec<(String, Then)>,
    reply: Option<(oneshot::Sender<Response>, Response)>,
}

impl Done {
    fn one(id: String, then: Then, reply: Option<(oneshot::Sender<Response>, Response)>) -> Self {
        Done {
            turns: vec![(id, then)],
            reply,
        }
    }
}

/// What a turn came to for one message.
enum Then {
    /// Still queued, due at this Unix time.
    Due(i64),
    /// Left the queue: delivered, failed, returned, deleted, quarantined.
    Gone,
    /// Put on hold.
    Held,
    /// Nothing changed: due again when it was (`None`: it was on hold).
    Back(Option<i64>),
}

/// A bulk request's messages, selected in a task, back to the loop.
struct Selected {
    action: Action,
    selection: Selection,
    ids: Result<Vec<String>, String>,
    reply: oneshot::Sender<Response>,
}

/// Where the loop's handlers send work and results.
struct Context<'a> {
    tasks: &'a TaskTracker,
    done: &'a mpsc::UnboundedSender<Done>,
    selected: &'a mpsc::UnboundedSender<Selected>,
}

impl<D: Delivery> QueueManager<D> {
    pub fn new(
        spool: Spool,
        states: StateStore,
        schedule: Schedule,
        deliverer: D,
        notices: Notices,
    ) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let (command_sender, commands) = mpsc::unbounded_channel();
        let handle = QueueHandle {
            sender,
            backlog: Backlog::default(),
        };
        let finish = Finisher {
            spool: spool.clone(),
            states: states.clone(),
            notices,
            handle: Some(handle.clone()),
        };
        let worker = Worker {
            schedule,
            deliverer: Arc::new(deliverer),
            finish,
        };
        QueueManager {
            spool,
            states,
            worker: Current::new(worker),
            receiver,
            handle,
            commands,
            command_sender,
            shutdown_grace: Duration::from_secs(30),
        }
    }

    pub fn handle(&self) -> QueueHandle {
        self.handle.clone()
    }

    /// Where a reload puts the new connectors, trust and schedule.
    pub fn outbound_slot(&self) -> OutboundSlot<D> {
        OutboundSlot {
            worker: self.worker.clone(),
        }
    }

    /// Where administrator requests ([`control`](super::control)) go.
    pub fn commands(&self) -> mpsc::UnboundedSender<Command> {
        self.command_sender.clone()
    }

    /// Runs until `shutdown`; attempts in flight finish (their results are
    /// saved) before it returns. The loop itself touches no file: reading
    /// the spool, acting on messages and saving states run on the blocking
    /// pool ([`blocking`]), and their results come back as [`Done`].
    ///
    /// The loop is a task of its own, on a worker thread: a task it wakes
    /// (the control socket's, with an answer) then runs on the same
    /// thread as soon as the loop yields, not whenever the thread that
    /// awaits `run` (the daemon's main thread) next has a core.
    pub async fn run(self, shutdown: CancellationToken) {
        if let Err(e) = tokio::spawn(self.turns(shutdown)).await {
            // A panic goes on as if the loop had run here.
            if let Ok(panic) = e.try_into_panic() {
                std::panic::resume_unwind(panic);
            }
        }
    }

    /// The loop of [`QueueManager::run`].
    async fn turns(mut self, shutdown: CancellationToken) {
        let mut board = Board::default();
        self.recover(&mut board).await;
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let tasks = TaskTracker::new();
        let (done, mut finished) = mpsc::unbounded_channel::<Done>();
        let (selected, mut selections) = mpsc::unbounded_channel::<Selected>();
        let mut ctx = Context {
            tasks: &tasks,
            done: &done,
            selected: &selected,
        };
        loop {
            board.publish(now(), &self.handle.backlog);
            // With every slot taken, what is due waits for a finished
            // attempt, which wakes the loop; waking for it now would wake
            // the loop at every timer tick (about 11 % of a core).
            let next = match slots.available_permits() {
                0 => None,
                _ => board.next_due(),
            };
            // Wake at least every second to close idle outbound connections.
            let sleep = next.map_or(Duration::from_secs(1), |at| {
                Duration::from_secs((at - now()).clamp(0, 1) as u64)
            });
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(id) = self.receiver.recv() => {
                    board.arrive(&id, now());
                    // Held before its announcement arrived: it stays held.
                    if !board.on_hold(&id) {
                        board.schedule(&id, now());
                    }
                }
                Some(turn) = finished.recv() => self.turn_over(&mut board, turn, &mut ctx),
                Some(command) = self.commands.recv() => {
                    if self.command(&mut board, command, &mut ctx) == After::RetryAll {
                        // The answer woke the control socket's task on this
                        // worker thread, where it runs once this task yields:
                        // it writes the answer before the pass, which would
                        // otherwise keep it (and a core) waiting.
                        tokio::task::yield_now().await;
                        retry_all(&mut board);
                    }
                }
                Some(selection) = selections.recv() => {
                    self.bulk(&mut board, selection, &mut ctx);
                }
                _ = tokio::time::sleep(sleep) => self.worker.get().deliverer.sweep_idle(),
            }
            // Start what is due, as far as free slots allow; a finished
            // attempt frees one and wakes the loop.
            while let Ok(permit) = slots.clone().try_acquire_owned() {
                let Some(id) = board.take_due(now()) else {
                    break;
                };
                let (worker, done) = (self.worker.get(), done.clone());
                tasks.spawn(async move {
                    let then = match worker.attempt(&id).await {
                        Some(next) => Then::Due(next),
                        None => Then::Gone,
                    };
                    drop(permit);
                    let _ = done.send(Done::one(id, then, None));
                });
            }
        }
        tasks.close();
        // Attempts in flight get the same grace as inbound transfers; one
        // still running after it is dropped with its connection. Its
        // message stays in the spool and is tried again after the restart
        // (at least once: the next hop may have it already).
        if tokio::time::timeout(self.shutdown_grace, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.shutdown_grace, "delivery attempts still running after the shutdown grace; their messages stay queued");
        }
    }

    /// Every committed message on the board again (recovery): held ones
    /// on hold, the others due when their state says (now without one).
    async fn recover(&self, board: &mut Board) {
        let (spool, states) = (self.spool.clone(), self.states.clone());
        let started = std::time::Instant::now();
        let found = blocking(move || {
            let recovered = spool.recover()?;
            let segments = recovered.segments;
            // The summary in a state record's head says when the message
            // is due; only a state without one (a large message's, or one
            // an earlier release wrote) is read and parsed.
            let found: Vec<_> = recovered
                .messages
                .into_iter()
                .map(|(id, arrived, summary)| {
                    let summary = summary.unwrap_or_else(|| {
                        states
                            .load(&id.to_string())
                            .map_or_else(Summary::default, |s| Summary {
                                next_attempt: s.next_attempt,
                                held: s.held,
                            })
                    });
                    (id, arrived, summary)
                })
                .collect();
            Ok::<_, SpoolError>((found, segments))
        })
        .await;
        let (found, segments) = match found {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read the spool; queued mail waits until restart");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the spool; queued mail waits until restart");
                return;
            }
        };
        tracing::info!(
            messages = found.len(),
            segments,
            seconds = format_args!("{:.2}", started.elapsed().as_secs_f64()),
            "spool recovered"
        );
        for (id, arrived, summary) in found {
            board.recovered(id, if arrived > 0 { arrived } else { now() }, summary);
        }
        // What the scan allocated and freed (a million small blocks at a
        // million messages) would otherwise stay resident.
        crate::daemon::release_free_memory();
    }

    /// A message's turn is over: the board takes in what it came to, the
    /// requests held for it are carried out, and the administrator, if
    /// one asked, gets the answer.
    fn turn_over(&self, board: &mut Board, turn: Done, ctx: &mut Context) {
        for (id, then) in turn.turns {
            let retry = board.turn_over(&id);
            match then {
                Then::Due(at) | Then::Back(Some(at)) => {
                    board.set_hold(&id, false);
                    board.schedule(&id, if retry { now() } else { at });
                }
                Then::Gone => board.leave(&id),
                Then::Held => board.set_hold(&id, true),
                Then::Back(None) => {}
            }
            for command in board.held.remove(&id).unwrap_or_default() {
                // Held requests are about one message: never `retry --all`.
                if self.command(board, command, ctx) == After::RetryAll {
                    retry_all(board);
                }
            }
        }
        if let Some((reply, answer)) = turn.reply {
            let _ = reply.send(answer);
        }
    }

    /// How long attempts in flight may take to finish once the stop begins.
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
}

/// Every waiting message due now, every busy one tried again once its
/// turn is over (`queue retry --all`, answered already).
fn retry_all(board: &mut Board) {
    board.retry_all(now());
}

/// Where a reload puts the new outbound side (see [`QueueManager::outbound_slot`]).
pub struct OutboundSlot<D> {
    worker: Current<Worker<D>>,
}

impl<D> Clone for OutboundSlot<D> {
    fn clone(&self) -> Self {
        OutboundSlot {
            worker: self.worker.clone(),
        }
    }
}

impl<D> OutboundSlot<D> {
    /// New connectors, trust anchors, client certificate and schedule for
    /// every attempt that starts from now on.
    pub fn replace(&self, deliverer: D, schedule: Schedule, notices: Notices) {
        let finish = Finisher {
            notices,
            ..self.worker.get().finish.clone()
        };
        self.worker.replace(Worker {
            schedule,
            deliverer: Arc::new(deliverer),
            finish,
        });
    }
}
