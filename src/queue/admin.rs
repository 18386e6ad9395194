//! `tlsrelay queue`: what an administrator sees of the queue and does to it.
//!
//! `list` and `show` read the spool's files (safe while the relay runs:
//! they only read, and a message that leaves the queue meanwhile is simply
//! not shown). `retry`, `delete`, `bounce`, `hold` and `release` go to
//! the running relay over its [control socket](super::control), so the
//! queue manager, which knows what is being delivered this moment, makes
//! the change. When no relay
//! runs they act on the files directly, holding the spool's lock so that a
//! relay starting meanwhile waits for nothing and finds a consistent spool.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::bulk::{self, Filter};
use super::control::{self, ControlError, Request, Response};
use super::envelope::Envelope;
use super::finish::{Finisher, Notices};
use super::spool::{Spool, SpoolError, SpoolView};
use super::state::{StateStore, Status};

mod render;

pub use render::{age, render_list, render_show, size};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Spool(#[from] SpoolError),
    #[error("{0}")]
    Control(#[from] ControlError),
    /// The message is not (or no longer) in the queue (exit 1).
    #[error("{0}: no such message in the queue")]
    NoSuchMessage(String),
    #[error("{}: the relay holds the spool but does not answer on {}: is it an older version?", path.display(), control::socket_path(path).display())]
    Unreachable { path: PathBuf },
    /// No spool where the configuration says (exit 1): a wrong `-c`, or a
    /// relay that never ran with it.
    #[error("{}: no spool here (no queue/ folder): check server.spool_dir in the configuration given with -c, or start the relay once", path.display())]
    NoSpool { path: PathBuf },
}

impl AdminError {
    /// True for errors the administrator made (exit 1), not the system.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            AdminError::NoSuchMessage(_) | AdminError::NoSpool { .. }
        )
    }
}

/// One queued message as `queue list` and `queue show` describe it.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub id: String,
    /// Unix time the message was accepted.
    pub received_at: i64,
    /// Content size in bytes, our `Received:` header included.
    pub size: u64,
    pub envelope: Envelope,
    pub attempts: u32,
    /// Unix time of the next attempt; `None` before the first.
    pub next_attempt: Option<i64>,
    /// On hold (`tlsrelay queue hold`): not delivered, never expires.
    pub held: bool,
    pub recipients: Vec<RecipientEntry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecipientEntry {
    pub address: String,
    /// `queued` (not tried yet), `deferred`, `held` (pending, the message
    /// on hold), `delivered` or `failed`.
    pub state: &'static str,
    pub code: Option<crate::smtp::status::EnhancedStatus>,
    pub reason: Option<String>,
    pub remote_mta: Option<String>,
}

/// The spool's `queue/` folder, which every command needs: an empty
/// listing of a folder that is not there would hide a wrong `-c`, and
/// acting on it would create a spool nobody uses.
fn queue_folder(spool_dir: &Path) -> Result<PathBuf, AdminError> {
    let queue = spool_dir.join("queue");
    match queue.is_dir() {
        true => Ok(queue),
        false => Err(AdminError::NoSpool {
            path: spool_dir.to_path_buf(),
        }),
    }
}

/// Every message in the spool under `spool_dir` that `filter` matches,
/// oldest first.
pub fn entries(spool_dir: &Path, filter: &Filter) -> Result<Vec<Entry>, AdminError> {
    queue_folder(spool_dir)?;
    let view = SpoolView::open(spool_dir)?;
    let states = StateStore::reader(&view);
    let mut entries = Vec::new();
    for id in view.ids()? {
        match read_entry(&view, &states, &id, filter) {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => {}
            // Delivered or deleted between the listing and the read.
            Err(SpoolError::File { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            // The relay moves such a file to quarantine/ when it meets it.
            Err(e @ SpoolError::Corrupt { .. }) => tracing::warn!(error = %e, "not listed"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(entries)
}

/// One message, with its content.
pub fn entry(spool_dir: &Path, id: &str) -> Result<(Entry, Vec<u8>), AdminError> {
    queue_folder(spool_dir)?;
    let view = SpoolView::open(spool_dir)?;
    if !view.contains(id) {
        return Err(AdminError::NoSuchMessage(id.to_string()));
    }
    let entry = read_entry(&view, &StateStore::reader(&view), id, &Filter::default())?
        .ok_or_else(|| AdminError::NoSuchMessage(id.to_string()))?;
    let (_, content) = view.read(id)?;
    Ok((entry, content))
}

/// The entry of message `id`, `None` when `filter` does not match it.
fn read_entry(
    view: &SpoolView,
    states: &StateStore,
    id: &str,
    filter: &Filter,
) -> Result<Option<Entry>, SpoolError> {
    let (envelope, size) = view.read_envelope(id)?;
    let state = states.load(id);
    if !filter.matches(&envelope, state.as_ref()) {
        return Ok(None);
    }
    let held = state.as_ref().is_some_and(|s| s.held);
    let recipients = envelope
        .recipients
        .iter()
        .map(|r| {
            let slot = state
                .as_ref()
                .and_then(|s| s.recipients.iter().find(|s| s.address == r.address));
            let state = match slot.map(|s| (s.status, s.reason.is_some())) {
                None | Some((Status::Pending, _)) if held => "held",
                None | Some((Status::Pending, false)) => "queued",
                Some((Status::Pending, true)) => "deferred",
                Some((Status::Delivered, _)) => "delivered",
                Some((Status::Failed, _)) => "failed",
            };
            RecipientEntry {
                address: r.address.clone(),
                state,
                code: slot.and_then(|s| s.code),
                reason: slot.and_then(|s| s.reason.clone()),
                remote_mta: slot.and_then(|s| s.remote_mta.clone()),
            }
        })
        .collect();
    Ok(Some(Entry {
        id: id.to_string(),
        received_at: envelope.received_at,
        size,
        attempts: state.as_ref().map_or(0, |s| s.attempts),
        next_attempt: state.as_ref().map(|s| s.next_attempt),
        held,
        envelope,
        recipients,
    }))
}

/// `retry`, `delete` or `bounce`: through the running relay, or on the
/// files when none runs.
pub async fn execute(
    spool_dir: &Path,
    notices: &Notices,
    request: &Request,
) -> Result<Response, AdminError> {
    queue_folder(spool_dir)?;
    match control::send(spool_dir, request).await {
        Ok(response) => Ok(response),
        Err(ControlError::NotRunning { .. }) => offline(spool_dir, notices, request).await,
        Err(e) => Err(e.into()),
    }
}

/// The same requests with no relay running: the spool's lock is held
/// throughout (a relay that holds it but did not answer is an error).
async fn offline(
    spool_dir: &Path,
    notices: &Notices,
    request: &Request,
) -> Result<Response, AdminError> {
    let spool = match Spool::open(spool_dir) {
        Ok(spool) => spool,
        Err(SpoolError::Locked { path }) => return Err(AdminError::Unreachable { path }),
        Err(e) => return Err(e.into()),
    };
    spool.recover()?;
    let response = on_files(&spool, notices, request).await;
    // Done and state records of what was changed, on disk before the
    // command exits.
    spool.flush().await;
    response
}

/// What [`offline`] does once it holds the spool.
async fn on_files(
    spool: &Spool,
    notices: &Notices,
    request: &Request,
) -> Result<Response, AdminError> {
    let states = StateStore::new(spool);
    let finish = Finisher {
        spool: spool.clone(),
        states: states.clone(),
        notices: notices.clone(),
        handle: None,
    };
    let id = match request {
        Request::Retry { id: None } => {
            let ids = spool.list()?;
            let due = ids.iter().filter(|id| make_due(&states, id)).count();
            let held = match ids.len() - due {
                0 => String::new(),
                n => format!(" ({n} on hold not tried: `tlsrelay queue release` first)"),
            };
            return Ok(Response::ok(format!(
                "{due} message(s) due now{held}; no relay is running, they are tried when it starts"
            )));
        }
        Request::Retry { id: Some(id) } | Request::Delete { id } | Request::Bounce { id } => id,
        Request::Bulk { action, selection } => {
            let ids = match bulk::select(spool, &states, selection) {
                Ok(ids) => ids,
                Err(bulk::SelectError::NoSuchMessage(id)) => {
                    return Err(AdminError::NoSuchMessage(id))
                }
                Err(bulk::SelectError::Spool(e)) => return Err(e.into()),
            };
            let done = ids
                .iter()
                .filter(|id| bulk::act(&finish, *action, id))
                .count();
            return Ok(Response::ok(bulk::summary(*action, selection, done, 0)));
        }
        Request::TlsMemoryList | Request::TlsMemoryForget { .. } => {
            return Ok(Response::error("not a queue request"))
        }
    };
    if !spool.contains(id) {
        return Err(AdminError::NoSuchMessage(id.clone()));
    }
    Ok(match request {
        Request::Retry { .. } if !make_due(&states, id) => Response::error(format!(
            "{id}: on hold, not tried; `tlsrelay queue release {id}` first"
        )),
        Request::Retry { .. } => Response::ok(format!(
            "{id}: due now; no relay is running, it is tried when it starts"
        )),
        Request::Delete { .. } => {
            finish.delete(id);
            Response::ok(format!("{id}: deleted"))
        }
        Request::Bounce { .. } => match finish.bounce(id).await {
            Ok(message) => Response::ok(message),
            Err(message) => Response::error(message),
        },
        Request::Bulk { .. } | Request::TlsMemoryList | Request::TlsMemoryForget { .. } => {
            Response::error("not a queue request")
        }
    })
}

/// The next attempt of `id` is now (a message without a state is due anyway).
/// Makes a message due now, as the running relay's `retry` does; a held
/// message stays held and untouched (false), as there.
fn make_due(states: &StateStore, id: &str) -> bool {
    match states.load(id) {
        Some(state) if state.held => false,
        Some(mut state) => {
            state.next_attempt = time::OffsetDateTime::now_utc().unix_timestamp();
            let _: io::Result<()> = states.save(id, &state);
            true
        }
        // No state yet: new, and due at start anyway.
        None => true,
    }
}
