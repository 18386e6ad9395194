//! The end of a recipient's road: failing what is still pending, telling
//! the sender (RFC 3464), and letting the message leave the queue. Shared
//! by delivery attempts (a `5xx`, or `max_age` passed) and by the
//! administrator's `tlsrelay queue bounce`, with or without a running relay.

use super::blocking;
use super::body::Body;
use super::dsn::{self, Kind, RecipientReport};
use super::envelope::{ClientInfo, Envelope, Recipient};
use super::handle::QueueHandle;
use super::spool::{Spool, SpoolError};
use super::state::{DeliveryState, RecipientState, StateStore, Status};
use crate::smtp::status::EnhancedStatus;

/// How notices are written: the name they come from (`[server]
/// hostname`) and how much of the message they return (`[queue]
/// return_content_limit`).
#[derive(Clone, Debug)]
pub struct Notices {
    pub hostname: String,
    pub return_limit: usize,
}

impl Notices {
    pub fn of(config: &crate::config::Config) -> Notices {
        Notices {
            hostname: config.server.hostname.to_string(),
            return_limit: usize::try_from(config.queue.return_content_limit.0)
                .unwrap_or(usize::MAX),
        }
    }
}

/// What finishing needs: where messages and their states are kept, and
/// how notices are written.
#[derive(Clone)]
pub struct Finisher {
    pub spool: Spool,
    pub states: StateStore,
    pub notices: Notices,
    /// Where a queued notice is announced; `None` when no relay runs (the
    /// notice is then found at the next start, like any queued message).
    pub handle: Option<QueueHandle>,
}

/// Marks every pending recipient of `state` failed for good: the status
/// made permanent (`4.4.1` → `5.4.1`, `default` when none is known yet)
/// and the reason prefixed with `why`. Returns the recipients it failed.
pub fn fail_pending(
    state: &mut DeliveryState,
    why: &str,
    default: EnhancedStatus,
) -> Vec<RecipientState> {
    let mut failed = Vec::new();
    for slot in state
        .recipients
        .iter_mut()
        .filter(|s| s.status == Status::Pending)
    {
        slot.status = Status::Failed;
        slot.reason = Some(match &slot.reason {
            Some(last) => format!("{why}: {last}"),
            None => why.to_string(),
        });
        slot.code = Some(slot.code.unwrap_or(default).made_permanent());
        failed.push(slot.clone());
    }
    failed
}

/// Logs and counts recipients failed without a server's verdict: `by`
/// is `max_age` or `administrator`. Their lines read like a delivery
/// attempt's `failed`, so one grep for the queue id shows every fate.
pub fn record_failed(id: &str, slots: &[RecipientState], by: &str) {
    for slot in slots {
        crate::metrics::recipient(crate::metrics::RecipientResult::Failed);
        tracing::info!(
            queue_id = id,
            to = slot.address.as_str(),
            status = %slot.code.map_or("-".to_string(), |c| c.to_string()),
            reason = slot.reason.as_deref().unwrap_or("-"),
            by,
            "failed"
        );
    }
}

impl Finisher {
    /// Queues a notice of `kind` about `slots` from `<>` to the sender,
    /// when the sender wants one (`NOTIFY`, never to `<>`). Returns the
    /// notice's queue id. It is committed before the caller removes the
    /// original, so a crash in between can duplicate it but not lose it.
    /// Of the content it reads only what the notice may return.
    pub async fn notify(
        &self,
        id: &str,
        envelope: &Envelope,
        content: &Body,
        kind: Kind,
        slots: &[RecipientState],
        until: Option<&str>,
    ) -> Option<String> {
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
                    status: slot.code.unwrap_or(EnhancedStatus::TRANSIENT),
                    diagnostic: slot.reason.clone().unwrap_or_default(),
                    remote_reply: slot.reply.clone(),
                    remote_mta: slot.remote_mta.clone(),
                })
            })
            .collect();
        let now = time::OffsetDateTime::now_utc();
        let date = crate::smtp::date::rfc5322_date(now);
        let report = dsn::Report {
            kind,
            reporting_mta: &self.notices.hostname,
            queue_id: id,
            envelope,
            recipients,
            arrival_date: &crate::smtp::date::rfc5322_date(unix(envelope.received_at)),
            now: &date,
            retry_until: until,
            return_limit: self.notices.return_limit,
        };
        let original = returnable(id, content, self.notices.return_limit).await;
        let Some(body) = report.render(&original, &format!("{id}/{}", now.unix_timestamp())) else {
            let why = report.withheld().unwrap_or("nobody to notify");
            tracing::info!(queue_id = id, kind = ?kind, why, "no delivery status notification sent");
            return None;
        };
        let notice = Envelope {
            sender: String::new(),
            recipients: vec![Recipient {
                address: envelope.sender.clone(),
                orcpt: None,
                notify: None,
            }],
            smtputf8: envelope.smtputf8,
            // RFC 8689 §5: the notice of a flagged message travels under
            // the same rules; as it is from `<>`, if it cannot go it is
            // dropped, never bounced.
            requiretls: envelope.requiretls,
            client: ClientInfo {
                helo: self.notices.hostname.clone(),
                ..ClientInfo::default()
            },
            received_at: now.unix_timestamp(),
            ..Envelope::default()
        };
        let mut writer = self.spool.create(&notice);
        let result = match writer.write(&body).await {
            Ok(()) => writer.commit().await,
            Err(e) => Err(e),
        };
        match result {
            Ok(dsn_id) => {
                tracing::info!(queue_id = id, dsn_queue_id = dsn_id.as_str(), kind = ?kind, to = envelope.sender.as_str(), requiretls = envelope.requiretls, "delivery status notification queued");
                crate::metrics::notice_queued(match kind {
                    Kind::Failure => crate::metrics::NoticeKind::Failure,
                    Kind::Delay => crate::metrics::NoticeKind::Delay,
                });
                if let Some(handle) = &self.handle {
                    handle.queued(&dsn_id);
                }
                Some(dsn_id)
            }
            // RFC 5321 §6.2 forbids bouncing a bounce; a DSN we cannot even queue is dropped.
            Err(e) => {
                tracing::error!(queue_id = %id, error = %e, "could not queue a delivery status notification");
                None
            }
        }
    }

    /// The message leaves the queue, its state with it: delivered, failed
    /// or returned. File work: the relay calls it on the blocking pool.
    pub fn remove(&self, id: &str) {
        self.spool.remove(id);
    }

    /// [`remove`](Self::remove) from async code: on the blocking pool only
    /// when it has file work to do.
    pub async fn remove_soon(&self, id: &str) {
        if !self.spool.remove_in_memory(id) {
            let (finish, gone) = (self.clone(), id.to_string());
            let _ = blocking(move || finish.remove(&gone)).await;
        }
    }

    /// `tlsrelay queue delete ID`: the message leaves the queue, and each
    /// recipient not yet delivered gets its `deleted` line (its fate).
    /// File work: the relay calls it on the blocking pool.
    pub fn delete(&self, id: &str) {
        let pending: Vec<String> = match self.spool.read_envelope(id) {
            Ok(envelope) => self
                .states
                .load(id)
                .unwrap_or_else(|| DeliveryState::new(&envelope, envelope.received_at))
                .pending()
                .map(|slot| slot.address.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        self.remove(id);
        for to in &pending {
            tracing::info!(
                queue_id = id,
                to = to.as_str(),
                by = "administrator",
                "deleted"
            );
        }
        tracing::info!(
            queue_id = id,
            recipients = pending.len(),
            "deleted by the administrator"
        );
    }

    /// `tlsrelay queue bounce ID`: every recipient still pending fails with
    /// `5.0.0` (or its last temporary status made permanent), the sender
    /// gets the notice, and the message leaves the queue.
    pub async fn bounce(&self, id: &str) -> Result<String, String> {
        let (spool, states, name) = (self.spool.clone(), self.states.clone(), id.to_string());
        let (envelope, content, saved) = blocking(move || {
            let (envelope, content) = spool.body(&name)?;
            Ok::<_, SpoolError>((envelope, content, states.load(&name)))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|read| read.map_err(|e| e.to_string()))
        .map_err(|e| format!("{id}: cannot read it: {e}"))?;
        let mut state =
            saved.unwrap_or_else(|| DeliveryState::new(&envelope, envelope.received_at));
        let why = format!(
            "returned to the sender by the administrator of {}",
            self.notices.hostname
        );
        let failed = fail_pending(&mut state, &why, EnhancedStatus::PERMANENT);
        record_failed(id, &failed, "administrator");
        let notice = match failed.is_empty() {
            true => None,
            false => {
                self.notify(id, &envelope, &content, Kind::Failure, &failed, None)
                    .await
            }
        };
        self.remove_soon(id).await;
        tracing::info!(
            queue_id = id,
            recipients = failed.len(),
            "returned to the sender by the administrator"
        );
        Ok(match notice {
            Some(dsn) => format!(
                "{id}: returned to the sender, {} recipient(s) not delivered; notice {dsn} queued to <{}>",
                failed.len(),
                envelope.sender
            ),
            None => format!(
                "{id}: removed, {} recipient(s) not delivered; no notice (the sender is <> or asked for none)",
                failed.len()
            ),
        })
    }
}

/// What a notice may return of `content`, for [`dsn::Report::render`]:
/// its first `limit` + 1 bytes. A notice returns the whole message only
/// when it is at most `limit` bytes, else at most `limit` bytes of its
/// headers; from this prefix it returns the same, and the prefix's
/// length still tells "more than `limit`". Content that cannot be read
/// is logged, and the notice returns none of it rather than not go.
async fn returnable<'c>(id: &str, content: &'c Body, limit: usize) -> std::borrow::Cow<'c, [u8]> {
    match content.prefix(limit.saturating_add(1)).await {
        Ok(prefix) => prefix,
        Err(e) => {
            tracing::warn!(queue_id = id, error = %e, "cannot read the message for its notice; the notice returns none of it");
            std::borrow::Cow::Borrowed(&[])
        }
    }
}

pub fn unix(seconds: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}
