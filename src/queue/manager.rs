//! The queue manager: every message in the spool is scheduled, attempted,
//! rescheduled or finished (DESIGN.md §6). At start every committed
//! message is scheduled again (recovery); new ones arrive from the
//! inbound side through [`QueueHandle::queued`].

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::blocking;
use super::bulk::{self, Action, Selection};
use super::control::{Command, Request, Response};
use super::delivery::{Delivery, RecipientOutcome, Verdict};
use super::dsn::Kind;
use super::envelope::{Envelope, Recipient};
use super::finish::{fail_pending, record_failed, unix, Finisher, Notices};
use super::handle::QueueHandle;
use super::schedule::Schedule;
use super::spool::{Spool, SpoolError};
use super::state::{DeliveryState, StateStore, Status};
use crate::current::Current;

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

/// Which messages wait for when, which are busy this moment, and which
/// administrator requests wait for a busy message. Owned by the manager's
/// loop alone, so it needs no lock.
#[derive(Default)]
struct Board {
    /// Due times; may hold stale entries, `waiting` is the truth.
    due: BinaryHeap<Reverse<(i64, String)>>,
    /// Messages not in flight, and when each is due.
    waiting: HashMap<String, i64>,
    /// Messages being attempted or returned right now.
    busy: HashSet<String>,
    /// Requests about a busy message, answered when its turn is over.
    held: HashMap<String, Vec<Command>>,
    /// Busy messages to try again as soon as their turn is over.
    retry_after: HashSet<String>,
    /// Messages on hold (`tlsrelay queue hold`): never scheduled.
    on_hold: HashSet<String>,
    /// Every queued message and when it arrived (Unix time), oldest
    /// first in `by_arrival`: the queue's size and age for the metrics,
    /// kept here so that a scrape reads no folder.
    arrived: HashMap<String, i64>,
    by_arrival: BTreeSet<(i64, String)>,
}

impl Board {
    fn schedule(&mut self, id: String, at: i64) {
        self.waiting.insert(id.clone(), at);
        self.due.push(Reverse((at, id)));
    }

    /// A message joins the queue.
    fn arrive(&mut self, id: &str, at: i64) {
        if let Some(old) = self.arrived.insert(id.to_string(), at) {
            self.by_arrival.remove(&(old, id.to_string()));
        }
        self.by_arrival.insert((at, id.to_string()));
    }

    /// A message leaves the queue.
    fn leave(&mut self, id: &str) {
        if let Some(at) = self.arrived.remove(id) {
            self.by_arrival.remove(&(at, id.to_string()));
        }
    }

    /// True when `id` is in the queue (waiting, busy or on hold).
    fn queued(&self, id: &str) -> bool {
        self.arrived.contains_key(id)
    }

    /// Takes a message off the schedule for a task that acts on it;
    /// returns when it was due (`None`: on hold, or not waiting).
    fn take(&mut self, id: &str) -> Option<i64> {
        self.busy.insert(id.to_string());
        self.waiting.remove(id)
    }

    /// The queue's size and oldest arrival, for the metrics.
    fn publish(&self) {
        let oldest = self.by_arrival.first().map(|(at, _)| *at);
        crate::metrics::queue_measured(self.arrived.len(), oldest);
    }

    /// The next message due by `now`, taken off the board.
    fn take_due(&mut self, now: i64) -> Option<String> {
        while let Some(Reverse((at, _))) = self.due.peek() {
            if *at > now {
                return None;
            }
            let Reverse((at, id)) = self.due.pop()?;
            if self.waiting.get(&id) == Some(&at) {
                self.waiting.remove(&id);
                return Some(id);
            }
        }
        None
    }
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
        let handle = QueueHandle { sender };
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
    pub async fn run(mut self, shutdown: CancellationToken) {
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
            board.publish();
            let next = board.due.peek().map(|Reverse((at, _))| *at);
            // Wake at least every second to close idle outbound connections.
            let sleep = next.map_or(Duration::from_secs(1), |at| {
                Duration::from_secs((at - now()).clamp(0, 1) as u64)
            });
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(id) = self.receiver.recv() => {
                    board.arrive(&id, now());
                    // Held before its announcement arrived: it stays held.
                    if !board.on_hold.contains(&id) {
                        board.schedule(id, now());
                    }
                }
                Some(turn) = finished.recv() => self.turn_over(&mut board, turn, &mut ctx),
                Some(command) = self.commands.recv() => {
                    self.command(&mut board, command, &mut ctx);
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
                board.busy.insert(id.clone());
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
        let found = blocking(move || {
            let ids = spool.list()?;
            Ok::<_, SpoolError>(
                ids.into_iter()
                    .map(|id| {
                        let state = states.load(&id);
                        let arrived = spool.arrived(&id);
                        (id, state, arrived)
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .await;
        let found = match found {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot list the spool; queued mail waits until restart");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot list the spool; queued mail waits until restart");
                return;
            }
        };
        for (id, state, arrived) in found {
            board.arrive(&id, arrived.unwrap_or_else(now));
            match state {
                Some(state) if state.held => {
                    board.on_hold.insert(id);
                }
                state => board.schedule(id, state.map_or(now(), |s| s.next_attempt)),
            }
        }
    }

    /// A message's turn is over: the board takes in what it came to, the
    /// requests held for it are carried out, and the administrator, if
    /// one asked, gets the answer.
    fn turn_over(&self, board: &mut Board, turn: Done, ctx: &mut Context) {
        for (id, then) in turn.turns {
            board.busy.remove(&id);
            let retry = board.retry_after.remove(&id);
            match then {
                Then::Due(at) | Then::Back(Some(at)) => {
                    board.on_hold.remove(&id);
                    board.schedule(id.clone(), if retry { now() } else { at });
                }
                Then::Gone => {
                    board.on_hold.remove(&id);
                    board.leave(&id);
                }
                Then::Held => {
                    board.on_hold.insert(id.clone());
                }
                Then::Back(None) => {}
            }
            for command in board.held.remove(&id).unwrap_or_default() {
                self.command(board, command, ctx);
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

    /// Carries out an administrator's request, or holds it until the
    /// message's attempt in progress is over. Whatever reads or changes
    /// files runs in a task; the message is busy meanwhile.
    fn command(&self, board: &mut Board, (request, reply): Command, ctx: &mut Context) {
        let worker = self.worker.get();
        let id = match &request {
            Request::Retry { id: None } => {
                let ids: Vec<String> = board.waiting.keys().cloned().collect();
                let count = ids.len();
                for id in ids {
                    board.schedule(id, now());
                }
                let busy = board.busy.len();
                board.retry_after.extend(board.busy.iter().cloned());
                let _ = reply.send(Response::ok(format!(
                    "{count} message(s) due now{}",
                    match busy {
                        0 => String::new(),
                        n => format!(
                            ", {n} being delivered already (tried again at once if deferred)"
                        ),
                    }
                )));
                return;
            }
            Request::Retry { id: Some(id) } | Request::Delete { id } | Request::Bounce { id } => {
                id.clone()
            }
            Request::Bulk { action, selection } => {
                let (spool, states) = (self.spool.clone(), self.states.clone());
                let (action, selection) = (*action, selection.clone());
                let selected = ctx.selected.clone();
                ctx.tasks.spawn(async move {
                    let query = selection.clone();
                    let ids = blocking(move || bulk::select(&spool, &states, &query))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()));
                    let _ = selected.send(Selected {
                        action,
                        selection,
                        ids,
                        reply,
                    });
                });
                return;
            }
            // The control socket answers these itself.
            Request::TlsMemoryList | Request::TlsMemoryForget { .. } => {
                let _ = reply.send(Response::error("not a queue request"));
                return;
            }
        };
        // The board knows every queued message: no need to ask the disk.
        if !board.queued(&id) {
            let _ = reply.send(Response::error(format!(
                "{id}: no such message in the queue"
            )));
            return;
        }
        if board.busy.contains(&id) {
            if matches!(request, Request::Retry { .. }) {
                let _ = reply.send(Response::ok(format!(
                    "{id}: being delivered now; tried again at once if deferred"
                )));
                board.retry_after.insert(id);
            } else {
                board.held.entry(id).or_default().push((request, reply));
            }
            return;
        }
        match request {
            Request::Retry { .. } if board.on_hold.contains(&id) => {
                let _ = reply.send(Response::error(format!(
                    "{id}: on hold, not tried; `tlsrelay queue release {id}` first"
                )));
            }
            Request::Retry { .. } => {
                board.schedule(id.clone(), now());
                let _ = reply.send(Response::ok(format!("{id}: due now")));
            }
            Request::Delete { .. } => {
                board.take(&id);
                let done = ctx.done.clone();
                ctx.tasks.spawn(async move {
                    let finish = worker.finish.clone();
                    let gone = id.clone();
                    let _ = blocking(move || finish.delete(&gone)).await;
                    let answer = Response::ok(format!("{id}: deleted"));
                    let _ = done.send(Done::one(id, Then::Gone, Some((reply, answer))));
                });
            }
            Request::Bounce { .. } => {
                let prior = board.take(&id);
                let done = ctx.done.clone();
                ctx.tasks.spawn(async move {
                    let (then, answer) = match worker.finish.bounce(&id).await {
                        Ok(message) => (Then::Gone, Response::ok(message)),
                        Err(message) => (Then::Back(prior), Response::error(message)),
                    };
                    let _ = done.send(Done::one(id, then, Some((reply, answer))));
                });
            }
            // Answered above.
            Request::Bulk { .. } | Request::TlsMemoryList | Request::TlsMemoryForget { .. } => {}
        }
    }

    /// `delete --all`, `hold`, `release`, once their messages are selected:
    /// each selected message at once (in a task), or, while it is being
    /// attempted, when its attempt is over.
    fn bulk(&self, board: &mut Board, selected: Selected, ctx: &mut Context) {
        let Selected {
            action,
            selection,
            ids,
            reply,
        } = selected;
        let ids = match ids {
            Ok(ids) => ids,
            Err(e) => {
                let _ = reply.send(Response::error(e));
                return;
            }
        };
        let mut later = 0;
        let mut todo = Vec::new();
        for id in ids {
            if board.busy.contains(&id) {
                // Its answer goes nowhere: this one is given now.
                let (reply, _) = tokio::sync::oneshot::channel();
                let one = Request::Bulk {
                    action,
                    selection: Selection::Id(id.clone()),
                };
                board.held.entry(id).or_default().push((one, reply));
                later += 1;
                continue;
            }
            let prior = board.take(&id);
            todo.push((id, prior));
        }
        let finish = self.worker.get().finish.clone();
        let done = ctx.done.clone();
        ctx.tasks.spawn(async move {
            let ids: Vec<String> = todo.iter().map(|(id, _)| id.clone()).collect();
            let acted = blocking(move || {
                ids.iter()
                    .map(|id| bulk::act(&finish, action, id))
                    .collect::<Vec<bool>>()
            })
            .await
            .unwrap_or_default();
            let count = acted.iter().filter(|a| **a).count();
            let turns = todo
                .into_iter()
                .enumerate()
                .map(|(i, (id, prior))| {
                    let then = match (acted.get(i).copied().unwrap_or(false), action) {
                        (false, _) => Then::Back(prior),
                        (true, Action::Delete) => Then::Gone,
                        (true, Action::Hold) => Then::Held,
                        (true, Action::Release) => Then::Due(now()),
                    };
                    (id, then)
                })
                .collect();
            let answer = Response::ok(bulk::summary(action, &selection, count, later));
            let _ = done.send(Done {
                turns,
                reply: Some((reply, answer)),
            });
        });
    }
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

/// A queued message read back: envelope, content, saved state.
type Loaded = (Envelope, Vec<u8>, Option<DeliveryState>);

/// What one attempt needs, shared by the attempt tasks.
struct Worker<D> {
    schedule: Schedule,
    deliverer: Arc<D>,
    finish: Finisher,
}

impl<D: Delivery> Worker<D> {
    /// Attempts message `id`; returns when to try again, `None` when done.
    async fn attempt(&self, id: &str) -> Option<i64> {
        let (envelope, content, saved) = match self.load(id).await {
            Ok(message) => message,
            Err(next) => return next,
        };
        // A fresh message was never attempted: it has no saved state.
        let mut state = saved.unwrap_or_else(|| DeliveryState::new(&envelope, now()));
        let pending: Vec<&Recipient> = envelope
            .recipients
            .iter()
            .filter(|r| {
                state
                    .recipients
                    .iter()
                    .any(|s| s.address == r.address && s.status == Status::Pending)
            })
            .collect();
        let outcomes = self
            .deliverer
            .attempt(id, &envelope, &content, &pending)
            .await;
        let mut failed = Vec::new();
        for outcome in outcomes {
            let Some(slot) = state
                .recipients
                .iter_mut()
                .find(|s| s.address == outcome.address)
            else {
                continue;
            };
            slot.remote_mta = outcome.remote_mta.clone();
            slot.reply = outcome.verdict.remote_reply().map(str::to_string);
            let result = match &outcome.verdict {
                Verdict::Delivered { .. } => "delivered",
                Verdict::Failed { .. } => "failed",
                Verdict::Deferred { .. } => "deferred",
            };
            crate::metrics::global().inc("tlsrelay_recipients_total", &[("result", result)]);
            log_outcome(id, &outcome);
            match outcome.verdict {
                Verdict::Delivered { reply } => {
                    slot.status = Status::Delivered;
                    slot.reason = Some(reply);
                    slot.code = None;
                }
                Verdict::Failed { status, reason, .. } => {
                    slot.status = Status::Failed;
                    slot.code = Some(status);
                    slot.reason = Some(reason);
                    failed.push(slot.clone());
                }
                Verdict::Deferred { status, reason, .. } => {
                    slot.code = Some(status);
                    slot.reason = Some(reason);
                }
            }
        }
        state.attempts += 1;
        let now = now();
        if !state.done() && self.schedule.expired(envelope.received_at, now) {
            let why = format!("gave up after {} attempts", state.attempts);
            let expired = fail_pending(&mut state, &why, "4.4.7");
            record_failed(id, &expired, "max_age");
            failed.extend(expired);
        }
        if !failed.is_empty() {
            self.finish
                .notify(id, &envelope, &content, Kind::Failure, &failed, None)
                .await;
        }
        if state.done() {
            let (finish, gone) = (self.finish.clone(), id.to_string());
            let _ = blocking(move || finish.remove(&gone)).await;
            tracing::info!(queue_id = id, attempts = state.attempts, "message finished");
            return None;
        }
        if self
            .schedule
            .delay_warning_due(envelope.received_at, now, state.delay_warned)
        {
            let pending: Vec<_> = state.pending().cloned().collect();
            let until = crate::smtp::date::rfc5322_date(unix(
                self.schedule.expires_at(envelope.received_at),
            ));
            self.finish
                .notify(id, &envelope, &content, Kind::Delay, &pending, Some(&until))
                .await;
            state.delay_warned = true;
        }
        let jitter = crate::random::unit() * 2.0 - 1.0;
        state.next_attempt =
            self.schedule
                .next_attempt(envelope.received_at, state.attempts, now, jitter);
        let next = state.next_attempt;
        let (states, name) = (self.finish.states.clone(), id.to_string());
        if let Err(e) = blocking(move || states.save(&name, &state))
            .await
            .and_then(|r| r)
        {
            tracing::warn!(queue_id = id, error = %e, "could not save delivery state; delivered recipients may be tried again");
        }
        Some(next)
    }

    /// The message and its saved state, read on the blocking pool (or
    /// from memory for its first attempt); `Err` says when to try again
    /// (`None`: never, it is gone or quarantined).
    async fn load(&self, id: &str) -> Result<Loaded, Option<i64>> {
        let spool = self.finish.spool.clone();
        if let Some((envelope, content)) = spool.take_fresh(id) {
            return Ok((envelope, content, None));
        }
        let (states, name) = (self.finish.states.clone(), id.to_string());
        let read = blocking(move || {
            let (envelope, content) = spool.read(&name)?;
            Ok::<_, SpoolError>((envelope, content, states.load(&name)))
        })
        .await;
        let e = match read {
            Ok(Ok(message)) => return Ok(message),
            // Deleted meanwhile (`tlsrelay queue delete`).
            Ok(Err(SpoolError::File { source, .. }))
                if source.kind() == io::ErrorKind::NotFound =>
            {
                return Err(None)
            }
            Ok(Err(e @ SpoolError::Corrupt { .. })) => {
                let (spool, name) = (self.finish.spool.clone(), id.to_string());
                match blocking(move || spool.quarantine(&name))
                    .await
                    .and_then(|r| r)
                {
                    Ok(to) => {
                        tracing::error!(queue_id = id, error = %e, quarantined = %to.display(), "not a readable message: moved to quarantine")
                    }
                    Err(q) => {
                        tracing::error!(queue_id = id, error = %e, quarantine_error = %q, "not a readable message, and it could not be moved to quarantine; it waits until restart")
                    }
                }
                return Err(None);
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        // A disk error: it may pass; try again later rather than never.
        tracing::error!(queue_id = id, error = %e, "cannot read a queued message; trying again later");
        Err(Some(now() + READ_RETRY_SECONDS))
    }
}

/// One line per recipient and attempt, with the queue id, so one grep
/// follows a message (the line Postfix writes as `status=sent`,
/// `status=deferred`, `status=bounced`).
fn log_outcome(id: &str, outcome: &RecipientOutcome) {
    let host = outcome.remote_mta.as_deref().unwrap_or("-");
    let ip = outcome
        .ip
        .map_or_else(|| "-".to_string(), |ip| ip.to_string());
    let tls = outcome.tls.as_deref().unwrap_or("-");
    let to = outcome.address.as_str();
    match &outcome.verdict {
        Verdict::Delivered { reply } => {
            tracing::info!(
                queue_id = id,
                to,
                host,
                ip,
                tls,
                reply = reply.as_str(),
                "delivered"
            )
        }
        Verdict::Deferred { status, reason, .. } | Verdict::Failed { status, reason, .. } => {
            let fate = match outcome.verdict.is_final() {
                true => "failed",
                false => "deferred",
            };
            tracing::info!(
                queue_id = id,
                to,
                host,
                ip,
                tls,
                status = status.as_str(),
                reason = reason.as_str(),
                "{fate}"
            )
        }
    }
}
