//! The queue manager: every message in the spool is scheduled, attempted,
//! rescheduled or finished (DESIGN.md §6). At start every committed
//! message is scheduled again (recovery); new ones arrive from the
//! inbound side through [`QueueHandle::queued`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::bulk::{self, Action, Selection};
use super::control::{Command, Request, Response};
use super::delivery::{Delivery, RecipientOutcome, Verdict};
use super::dsn::Kind;
use super::envelope::Recipient;
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

/// A message's turn is over: an attempt (with when to try again) or a bounce.
struct Done {
    id: String,
    next: Option<i64>,
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
}

impl Board {
    fn schedule(&mut self, id: String, at: i64) {
        self.waiting.insert(id.clone(), at);
        self.due.push(Reverse((at, id)));
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
    /// saved) before it returns.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut board = Board::default();
        match self.spool.list() {
            Ok(ids) => {
                for id in ids {
                    match self.states.load(&id) {
                        Some(state) if state.held => {
                            board.on_hold.insert(id);
                        }
                        state => board.schedule(id, state.map_or(now(), |s| s.next_attempt)),
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot list the spool; queued mail waits until restart")
            }
        }
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let tasks = TaskTracker::new();
        let (done, mut finished) = mpsc::unbounded_channel::<Done>();
        loop {
            let next = board.due.peek().map(|Reverse((at, _))| *at);
            // Wake at least every second to close idle outbound connections.
            let sleep = next.map_or(Duration::from_secs(1), |at| {
                Duration::from_secs((at - now()).clamp(0, 1) as u64)
            });
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(id) = self.receiver.recv() => {
                    // Held before its announcement arrived: it stays held.
                    if !board.on_hold.contains(&id) {
                        board.schedule(id, now());
                    }
                }
                Some(turn) = finished.recv() => {
                    board.busy.remove(&turn.id);
                    for command in board.held.remove(&turn.id).unwrap_or_default() {
                        self.command(&mut board, command, &self.worker.get(), &tasks, &done);
                    }
                    let untouched = !board.busy.contains(&turn.id)
                        && !board.waiting.contains_key(&turn.id)
                        && !board.on_hold.contains(&turn.id);
                    let next = match board.retry_after.remove(&turn.id) {
                        true => turn.next.map(|_| now()),
                        false => turn.next,
                    };
                    if let (Some(next), true) = (next, untouched) {
                        if self.spool.contains(&turn.id) {
                            board.schedule(turn.id, next);
                        }
                    }
                }
                Some(command) = self.commands.recv() => {
                    self.command(&mut board, command, &self.worker.get(), &tasks, &done);
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
                    let next = worker.attempt(&id).await;
                    drop(permit);
                    let _ = done.send(Done { id, next });
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

    /// How long attempts in flight may take to finish once the stop begins.
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Carries out an administrator's request, or holds it until the
    /// message's attempt in progress is over.
    fn command(
        &self,
        board: &mut Board,
        (request, reply): Command,
        worker: &Arc<Worker<D>>,
        tasks: &TaskTracker,
        done: &mpsc::UnboundedSender<Done>,
    ) {
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
                let _ = reply.send(self.bulk(board, *action, selection, worker));
                return;
            }
            // The control socket answers these itself.
            Request::TlsMemoryList | Request::TlsMemoryForget { .. } => {
                let _ = reply.send(Response::error("not a queue request"));
                return;
            }
        };
        if !self.spool.contains(&id) {
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
                board.waiting.remove(&id);
                board.on_hold.remove(&id);
                worker.finish.delete(&id);
                let _ = reply.send(Response::ok(format!("{id}: deleted")));
            }
            Request::Bounce { .. } => {
                board.waiting.remove(&id);
                board.on_hold.remove(&id);
                board.busy.insert(id.clone());
                let (worker, done) = (worker.clone(), done.clone());
                tasks.spawn(async move {
                    let answer = match worker.finish.bounce(&id).await {
                        Ok(message) => Response::ok(message),
                        Err(message) => Response::error(message),
                    };
                    let _ = reply.send(answer);
                    let _ = done.send(Done { id, next: None });
                });
            }
            // Answered above.
            Request::Bulk { .. } | Request::TlsMemoryList | Request::TlsMemoryForget { .. } => {}
        }
    }

    /// `delete --all`, `hold`, `release`: each selected message at once,
    /// or, while it is being attempted, when its attempt is over.
    fn bulk(
        &self,
        board: &mut Board,
        action: Action,
        selection: &Selection,
        worker: &Worker<D>,
    ) -> Response {
        let ids = match bulk::select(&self.spool, &self.states, selection) {
            Ok(ids) => ids,
            Err(e) => return Response::error(e.to_string()),
        };
        let (mut done, mut later) = (0, 0);
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
            if !bulk::act(&worker.finish, action, &id) {
                continue;
            }
            done += 1;
            match action {
                Action::Delete => {
                    board.waiting.remove(&id);
                    board.on_hold.remove(&id);
                }
                Action::Hold => {
                    board.waiting.remove(&id);
                    board.on_hold.insert(id);
                }
                Action::Release => {
                    board.on_hold.remove(&id);
                    board.schedule(id, now());
                }
            }
        }
        Response::ok(bulk::summary(action, selection, done, later))
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

/// What one attempt needs, shared by the attempt tasks.
struct Worker<D> {
    schedule: Schedule,
    deliverer: Arc<D>,
    finish: Finisher,
}

impl<D: Delivery> Worker<D> {
    /// Attempts message `id`; returns when to try again, `None` when done.
    async fn attempt(&self, id: &str) -> Option<i64> {
        let (spool, states) = (&self.finish.spool, &self.finish.states);
        let fresh = spool.take_fresh(id);
        let first = fresh.is_some();
        let (envelope, content) = match fresh.map_or_else(|| spool.read(id), Ok) {
            Ok(message) => message,
            // Deleted meanwhile (`tlsrelay queue delete`).
            Err(SpoolError::File { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return None
            }
            Err(e @ SpoolError::Corrupt { .. }) => {
                match spool.quarantine(id) {
                    Ok(to) => {
                        tracing::error!(queue_id = id, error = %e, quarantined = %to.display(), "not a readable message: moved to quarantine")
                    }
                    Err(q) => {
                        tracing::error!(queue_id = id, error = %e, quarantine_error = %q, "not a readable message, and it could not be moved to quarantine; it waits until restart")
                    }
                }
                return None;
            }
            // A disk error: it may pass; try again later rather than never.
            Err(e) => {
                tracing::error!(queue_id = id, error = %e, "cannot read a queued message; trying again later");
                return Some(now() + READ_RETRY_SECONDS);
            }
        };
        // A fresh message was never attempted: it has no saved state.
        let mut state = (!first)
            .then(|| states.load(id))
            .flatten()
            .unwrap_or_else(|| DeliveryState::new(&envelope, now()));
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
            self.finish.remove(id);
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
        if let Err(e) = states.save(id, &state) {
            tracing::warn!(queue_id = id, error = %e, "could not save delivery state; delivered recipients may be tried again");
        }
        Some(state.next_attempt)
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
