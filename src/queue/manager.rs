//! The queue manager: every message in the spool is scheduled, attempted,
//! rescheduled or finished (DESIGN.md §6). At start every committed
//! message is scheduled again (recovery); new ones arrive from the
//! inbound side through [`QueueHandle::queued`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::dsn::{self, Kind, RecipientReport};
use super::envelope::{ClientInfo, Envelope, Recipient};
use super::schedule::Schedule;
use super::spool::Spool;
use super::state::{DeliveryState, StateStore, Status};
use crate::outbound::deliver::Deliverer;
use crate::outbound::outcome::Verdict;
use crate::outbound::route::Resolve;

/// How many messages are attempted at once.
const CONCURRENCY: usize = 64;

/// Tells the manager about messages the inbound side just committed.
#[derive(Clone)]
pub struct QueueHandle {
    sender: mpsc::UnboundedSender<String>,
}

impl QueueHandle {
    pub fn queued(&self, id: &str) {
        let _ = self.sender.send(id.to_string());
    }
}

pub struct QueueManager<R> {
    spool: Spool,
    states: StateStore,
    schedule: Schedule,
    deliverer: Arc<Deliverer<R>>,
    hostname: String,
    receiver: mpsc::UnboundedReceiver<String>,
    handle: QueueHandle,
}

/// Unix seconds now.
fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl<R: Resolve + 'static> QueueManager<R> {
    pub fn new(
        spool: Spool,
        states: StateStore,
        schedule: Schedule,
        deliverer: Deliverer<R>,
        hostname: String,
    ) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        QueueManager {
            spool,
            states,
            schedule,
            deliverer: Arc::new(deliverer),
            hostname,
            receiver,
            handle: QueueHandle { sender },
        }
    }

    pub fn handle(&self) -> QueueHandle {
        self.handle.clone()
    }

    /// Runs until `shutdown`; attempts in flight finish (their results are
    /// saved) before it returns.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut due: BinaryHeap<Reverse<(i64, String)>> = BinaryHeap::new();
        let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
        match self.spool.list() {
            Ok(ids) => {
                for id in ids {
                    let at = self.states.load(&id).map_or(now(), |s| s.next_attempt);
                    due.push(Reverse((at, id)));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot list the spool; queued mail waits until restart")
            }
        }
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let tasks = TaskTracker::new();
        let this = Arc::new(Worker {
            spool: self.spool.clone(),
            states: self.states.clone(),
            schedule: self.schedule.clone(),
            deliverer: self.deliverer.clone(),
            hostname: self.hostname.clone(),
            handle: self.handle.clone(),
        });
        let (reschedule, mut rescheduled) = mpsc::unbounded_channel::<(i64, String)>();
        loop {
            let next = due.peek().map(|Reverse((at, _))| *at);
            // Wake at least every second to close idle outbound connections.
            let sleep = next.map_or(Duration::from_secs(1), |at| {
                Duration::from_secs((at - now()).clamp(0, 1) as u64)
            });
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(id) = self.receiver.recv() => due.push(Reverse((now(), id))),
                Some(entry) = rescheduled.recv() => due.push(Reverse(entry)),
                _ = tokio::time::sleep(sleep) => self.deliverer.sweep_idle(),
            }
            while let Some(Reverse((at, _))) = due.peek() {
                if *at > now() {
                    break;
                }
                let Some(Reverse((_, id))) = due.pop() else {
                    break;
                };
                if !busy
                    .lock()
                    .map(|mut b| b.insert(id.clone()))
                    .unwrap_or(false)
                {
                    continue;
                }
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (worker, busy, reschedule) = (this.clone(), busy.clone(), reschedule.clone());
                tasks.spawn(async move {
                    if let Some(next) = worker.attempt(&id).await {
                        let _ = reschedule.send((next, id.clone()));
                    }
                    if let Ok(mut b) = busy.lock() {
                        b.remove(&id);
                    }
                    drop(permit);
                });
            }
        }
        tasks.close();
        tasks.wait().await;
    }
}

/// What one attempt needs, shared by the attempt tasks.
struct Worker<R> {
    spool: Spool,
    states: StateStore,
    schedule: Schedule,
    deliverer: Arc<Deliverer<R>>,
    hostname: String,
    handle: QueueHandle,
}

impl<R: Resolve> Worker<R> {
    /// Attempts message `id`; returns when to try again, `None` when done.
    async fn attempt(&self, id: &str) -> Option<i64> {
        let (envelope, content) = match self.spool.read(id) {
            Ok(message) => message,
            Err(e) => {
                tracing::error!(queue_id = id, error = %e, "cannot read a queued message; it stays for an administrator");
                return None;
            }
        };
        let mut state = self
            .states
            .load(id)
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
            for slot in state
                .recipients
                .iter_mut()
                .filter(|s| s.status == Status::Pending)
            {
                slot.status = Status::Failed;
                let last = slot
                    .reason
                    .clone()
                    .unwrap_or_else(|| "not delivered in time".into());
                slot.reason = Some(format!("gave up after {} attempts: {last}", state.attempts));
                slot.code = Some(permanent(slot.code.as_deref().unwrap_or("4.4.7")));
                failed.push(slot.clone());
            }
        }
        if !failed.is_empty() {
            self.notify(id, &envelope, &content, Kind::Failure, &failed, None);
        }
        if state.done() {
            self.spool.remove(id);
            self.states.remove(id);
            tracing::info!(queue_id = id, attempts = state.attempts, "message finished");
            return None;
        }
        if self
            .schedule
            .delay_warning_due(envelope.received_at, now, state.delay_warned)
        {
            let pending: Vec<_> = state
                .recipients
                .iter()
                .filter(|s| s.status == Status::Pending)
                .cloned()
                .collect();
            let until =
                crate::inbound::rfc5322_date(unix(self.schedule.expires_at(envelope.received_at)));
            self.notify(id, &envelope, &content, Kind::Delay, &pending, Some(&until));
            state.delay_warned = true;
        }
        let jitter = crate::random::unit() * 2.0 - 1.0;
        state.next_attempt =
            self.schedule
                .next_attempt(envelope.received_at, state.attempts, now, jitter);
        if let Err(e) = self.states.save(id, &state) {
            tracing::warn!(queue_id = id, error = %e, "could not save delivery state; delivered recipients may be tried again");
        }
        Some(state.next_attempt)
    }

    /// Queues a DSN from `<>` to the sender, when it wants one.
    fn notify(
        &self,
        id: &str,
        envelope: &Envelope,
        content: &[u8],
        kind: Kind,
        slots: &[super::state::RecipientState],
        until: Option<&str>,
    ) {
        let recipients = slots
            .iter()
            .filter_map(|slot| {
                let recipient = envelope
                    .recipients
                    .iter()
                    .find(|r| r.address == slot.address)?
                    .clone();
                Some(RecipientReport {
                    recipient,
                    status: slot.code.clone().unwrap_or_else(|| "4.0.0".into()),
                    diagnostic: slot.reason.clone().unwrap_or_default(),
                    remote_mta: slot.remote_mta.clone(),
                    remote_reply: slot.reply.clone(),
                })
            })
            .collect();
        let now = time::OffsetDateTime::now_utc();
        let date = crate::inbound::rfc5322_date(now);
        let report = dsn::Report {
            kind,
            reporting_mta: &self.hostname,
            queue_id: id,
            envelope,
            recipients,
            arrival_date: &crate::inbound::rfc5322_date(unix(envelope.received_at)),
            now: &date,
            retry_until: until,
        };
        let Some(body) = report.render(content, &format!("{id}/{}", now.unix_timestamp())) else {
            let why = report.withheld().unwrap_or("nobody to notify");
            tracing::info!(queue_id = id, kind = ?kind, why, "no delivery status notification sent");
            return;
        };
        let notice = Envelope {
            sender: String::new(),
            recipients: vec![Recipient {
                address: envelope.sender.clone(),
                orcpt: None,
                notify: None,
            }],
            smtputf8: envelope.smtputf8,
            client: ClientInfo {
                helo: self.hostname.clone(),
                ..ClientInfo::default()
            },
            received_at: now.unix_timestamp(),
            ..Envelope::default()
        };
        let spool = self.spool.clone();
        let handle = self.handle.clone();
        let original = id.to_string();
        tokio::spawn(async move {
            let mut writer = spool.create(&notice);
            let result = match writer.write(&body).await {
                Ok(()) => writer.commit().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(dsn_id) => {
                    tracing::info!(queue_id = %original, dsn = %dsn_id, kind = ?kind, "delivery status notification queued");
                    handle.queued(&dsn_id);
                }
                // RFC 5321 §6.2 forbids bouncing a bounce; a DSN we cannot even queue is dropped.
                Err(e) => {
                    tracing::error!(queue_id = %original, error = %e, "could not queue a delivery status notification")
                }
            }
        });
    }
}

/// A temporary status made permanent for a final failure (`4.4.1` → `5.4.1`).
fn permanent(status: &str) -> String {
    match status.strip_prefix("4.") {
        Some(rest) => format!("5.{rest}"),
        None => status.to_string(),
    }
}

fn unix(seconds: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}
