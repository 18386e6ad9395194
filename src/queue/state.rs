//! Per-recipient delivery state of a queued message, kept in the spool
//! as JSON: a state record in the segments ([`Spool::save_state`]; the
//! latest one counts), or, for a message queued by a release before
//! segments and not attempted since, its file `SPOOL_DIR/state/<ID>`
//! (read in place; the first save supersedes and removes it).
//!
//! The state is saved after every attempt but neither synced nor waited
//! for: losing it in a crash only means recipients already delivered are
//! tried again, a duplicate and never a loss (DESIGN.md §6). A message
//! without a state is new: every recipient pending, due now. The state
//! leaves with its message ([`Spool::remove`]).

use crate::smtp::status::EnhancedStatus;
use std::io;

use serde::{Deserialize, Serialize};

use super::envelope::Envelope;
use super::spool::{Spool, SpoolView};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryState {
    /// Attempts made so far (all recipients together).
    pub attempts: u32,
    /// Unix time of the next attempt.
    pub next_attempt: i64,
    /// A delayed-delivery notice went out already.
    pub delay_warned: bool,
    /// On hold (`tlsrelay queue hold`): never attempted, never expired,
    /// until released. Absent from states written before holds existed.
    #[serde(default)]
    pub held: bool,
    pub recipients: Vec<RecipientState>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientState {
    pub address: String,
    pub status: Status,
    /// RFC 3463 code of the last outcome, such as `4.4.1`.
    #[serde(default, deserialize_with = "crate::smtp::status::lenient")]
    pub code: Option<EnhancedStatus>,
    /// The last reason in words (the remote reply, or what failed).
    #[serde(default)]
    pub reason: Option<String>,
    /// The server that gave it.
    #[serde(default)]
    pub remote_mta: Option<String>,
    /// That server's reply as sent, when a server refused: the DSN's
    /// `smtp` Diagnostic-Code (RFC 3464 §2.3.6).
    #[serde(default)]
    pub reply: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryState {
    /// A new message: everyone pending, due at `now`.
    pub fn new(envelope: &Envelope, now: i64) -> Self {
        DeliveryState {
            attempts: 0,
            next_attempt: now,
            delay_warned: false,
            held: false,
            recipients: envelope
                .recipients
                .iter()
                .map(|r| RecipientState {
                    address: r.address.clone(),
                    status: Status::Pending,
                    code: None,
                    reason: None,
                    remote_mta: None,
                    reply: None,
                })
                .collect(),
        }
    }

    pub fn pending(&self) -> impl Iterator<Item = &RecipientState> {
        self.recipients
            .iter()
            .filter(|r| r.status == Status::Pending)
    }

    /// Nothing left to try: the message can leave the queue.
    pub fn done(&self) -> bool {
        self.pending().next().is_none()
    }

    /// The reason of the first pending recipient, for `queue list`.
    pub fn last_reason(&self) -> Option<&str> {
        self.pending().find_map(|r| r.reason.as_deref())
    }
}

/// The delivery states of a spool: saved and loaded through the spool
/// this process holds, or only loaded, from a [`SpoolView`] of a spool a
/// running relay holds (`tlsrelay queue list`). Cheap to clone.
#[derive(Clone, Debug)]
pub struct StateStore {
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    Spool(Spool),
    View(SpoolView),
}

impl StateStore {
    /// The states of `spool`.
    pub fn new(spool: &Spool) -> Self {
        StateStore {
            source: Source::Spool(spool.clone()),
        }
    }

    /// The states as `view` read them, for reading only: built once per
    /// command, not per message.
    pub fn reader(view: &SpoolView) -> Self {
        StateStore {
            source: Source::View(view.clone()),
        }
    }

    /// The saved state, `None` when there is none (or it is unreadable:
    /// then the message starts over, which can duplicate but never lose).
    pub fn load(&self, id: &str) -> Option<DeliveryState> {
        let json = match &self.source {
            Source::Spool(spool) => spool.state(id)?,
            Source::View(view) => view.state(id)?,
        };
        serde_json::from_slice(&json).ok()
    }

    /// Saves the state of queued message `id` (see [`Spool::save_state`]:
    /// not synced, not waited for). A message no longer queued gets none.
    pub fn save(&self, id: &str, state: &DeliveryState) -> io::Result<()> {
        let Source::Spool(spool) = &self.source else {
            return Err(io::Error::other(
                "delivery states are read-only here: the spool is not held",
            ));
        };
        let json = serde_json::to_vec(state).map_err(io::Error::other)?;
        let summary = crate::queue::spool::Summary {
            next_attempt: state.next_attempt,
            held: state.held,
        };
        spool.save_state(id, summary, json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::envelope::Recipient;

    fn envelope() -> Envelope {
        let recipient = |address: &str| Recipient {
            address: address.into(),
            orcpt: None,
            notify: None,
        };
        Envelope {
            recipients: vec![recipient("a@x.test"), recipient("b@y.test")],
            ..Envelope::default()
        }
    }

    /// A spool as an earlier release left it: message Q1 in `queue/`,
    /// its state `old` in `state/`.
    fn old_spool(dir: &std::path::Path, old: &str) -> (Spool, StateStore) {
        let message = format!(
            "tlsrelay-spool 1\n{}\nSubject: x\r\n\r\nhi\r\n",
            serde_json::to_string(&envelope()).unwrap_or_default()
        );
        for (folder, text) in [("queue", message.as_str()), ("state", old)] {
            std::fs::create_dir_all(dir.join(folder)).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(dir.join(folder).join("Q1"), text).unwrap_or_else(|e| panic!("{e}"));
        }
        let spool = Spool::open(dir).unwrap_or_else(|e| panic!("{e}"));
        spool.recover().unwrap_or_else(|e| panic!("{e}"));
        let states = StateStore::new(&spool);
        (spool, states)
    }

    #[tokio::test]
    async fn state_round_trips_and_missing_means_new() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let store = StateStore::new(&spool);
        let mut writer = spool.create(&envelope());
        writer
            .write(b"Subject: x\r\n\r\nhi\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let id = writer.commit().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.load(&id), None);
        let mut state = DeliveryState::new(&envelope(), 100);
        assert!(!state.done());
        state.recipients[0].status = Status::Delivered;
        state.recipients[1].reason = Some("mx.y.test said: 451 later".into());
        store.save(&id, &state).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.load(&id).as_ref(), Some(&state));
        assert_eq!(state.last_reason(), Some("mx.y.test said: 451 later"));
        // Written: read back from its record, and by a reader of the folder.
        spool.flush().await;
        assert_eq!(store.load(&id).as_ref(), Some(&state));
        let view = SpoolView::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(StateStore::reader(&view).load(&id).as_ref(), Some(&state));
        assert!(StateStore::reader(&view).save(&id, &state).is_err());
        state.recipients[1].status = Status::Failed;
        assert!(state.done());
        // The state leaves with its message; a message gone gets none.
        spool.remove(&id);
        assert_eq!(store.load(&id), None);
        store.save(&id, &state).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.load(&id), None);
        assert!(!dir.path().join("state").exists());
    }

    /// A state written before holds existed has no `held`: not held. A
    /// save supersedes the old file and removes it.
    #[tokio::test]
    async fn old_states_without_the_hold_still_load() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let old = r#"{"attempts":2,"next_attempt":100,"delay_warned":false,"recipients":[{"address":"a@x.test","status":"pending"}]}"#;
        let (spool, store) = old_spool(dir.path(), old);
        let state = store.load("Q1").unwrap_or_else(|| panic!("not loaded"));
        assert_eq!((state.attempts, state.held), (2, false));
        let held = DeliveryState {
            held: true,
            ..state
        };
        store.save("Q1", &held).unwrap_or_else(|e| panic!("{e}"));
        assert!(!dir.path().join("state/Q1").exists());
        assert_eq!(store.load("Q1").as_ref(), Some(&held));
        spool.flush().await;
        drop((spool, store));
        let spool = Spool::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        spool.recover().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(StateStore::new(&spool).load("Q1"), Some(held));
        // No old state left: the folder is gone.
        assert!(!dir.path().join("state").exists());
    }

    /// Statuses are typed now; states written before keep loading: a
    /// well-formed code as it was, one that is not (a remote server's
    /// `3.1.1`) as none rather than an unreadable message.
    #[tokio::test]
    async fn stored_codes_load_as_statuses_and_bad_ones_as_none() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let old = r#"{"attempts":1,"next_attempt":100,"delay_warned":false,"recipients":[
            {"address":"a@x.test","status":"pending","code":"4.4.1"},
            {"address":"b@x.test","status":"pending","code":"3.1.1"},
            {"address":"c@x.test","status":"pending","code":null}]}"#;
        let (spool, store) = old_spool(dir.path(), old);
        let state = store.load("Q1").unwrap_or_else(|| panic!("not loaded"));
        let codes: Vec<_> = state.recipients.iter().map(|r| r.code).collect();
        assert_eq!(codes, [Some(EnhancedStatus::NO_ANSWER), None, None]);
        store.save("Q1", &state).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8(spool.state("Q1").unwrap_or_default()).unwrap_or_default();
        assert!(text.contains(r#""code":"4.4.1""#), "{text}");
    }

    /// A message of an earlier release leaves with its state file.
    #[tokio::test]
    async fn removing_an_old_message_removes_its_state_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let old = r#"{"attempts":1,"next_attempt":100,"delay_warned":false,"recipients":[]}"#;
        let (spool, store) = old_spool(dir.path(), old);
        assert!(store.load("Q1").is_some());
        spool.remove("Q1");
        assert_eq!(store.load("Q1"), None);
        assert!(!dir.path().join("state/Q1").exists());
    }
}
