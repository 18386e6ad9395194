//! One delivery attempt of one queued message, as the queue sees it: read
//! it back (on the blocking pool; a large message's content stays in its
//! file, [`Body`]), hand its pending recipients to
//! [`Delivery`], record each outcome, bounce or warn as the schedule says,
//! and save the state or let the message go.

use std::io;
use std::sync::Arc;

use super::{now, READ_RETRY_SECONDS};
use crate::metrics::RecipientResult;
use crate::queue::blocking;
use crate::queue::body::Body;
use crate::queue::delivery::{Delivery, RecipientOutcome, Verdict};
use crate::queue::dsn::Kind;
use crate::queue::envelope::{Envelope, Recipient};
use crate::queue::finish::{fail_pending, record_failed, unix, Finisher};
use crate::queue::schedule::Schedule;
use crate::queue::spool::SpoolError;
use crate::queue::state::{DeliveryState, RecipientState, Status};
use crate::smtp::status::EnhancedStatus;

/// A queued message read back: envelope, content, saved state.
type Loaded = (Envelope, Body, Option<DeliveryState>);

/// What one attempt needs, shared by the attempt tasks.
pub(super) struct Worker<D> {
    pub(super) schedule: Schedule,
    pub(super) deliverer: Arc<D>,
    pub(super) finish: Finisher,
}

impl<D: Delivery> Worker<D> {
    /// Attempts message `id`; returns when to try again, `None` when done.
    pub(super) async fn attempt(&self, id: &str) -> Option<i64> {
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
        let mut failed = record(id, &mut state, outcomes);
        state.attempts += 1;
        let now = now();
        if !state.done() && self.schedule.expired(envelope.received_at, now) {
            let why = format!("gave up after {} attempts", state.attempts);
            let expired = fail_pending(&mut state, &why, EnhancedStatus::EXPIRED);
            record_failed(id, &expired, "max_age");
            failed.extend(expired);
        }
        if !failed.is_empty() {
            self.finish
                .notify(id, &envelope, &content, Kind::Failure, &failed, None)
                .await;
        }
        if state.done() {
            self.finish.remove_soon(id).await;
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
            return Ok((envelope, Body::in_memory(content), None));
        }
        let (states, name) = (self.finish.states.clone(), id.to_string());
        let read = blocking(move || {
            let (envelope, content) = spool.body(&name)?;
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

/// Each outcome into its recipient's state, counted and logged; returns
/// the recipients that failed for good.
fn record(
    id: &str,
    state: &mut DeliveryState,
    outcomes: Vec<RecipientOutcome>,
) -> Vec<RecipientState> {
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
        crate::metrics::recipient(match &outcome.verdict {
            Verdict::Delivered { .. } => RecipientResult::Delivered,
            Verdict::Failed { .. } => RecipientResult::Failed,
            Verdict::Deferred { .. } => RecipientResult::Deferred,
        });
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
    failed
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
                status = %status,
                reason = reason.as_str(),
                "{fate}"
            )
        }
    }
}
