//! Per-recipient delivery state of a queued message, kept beside it in
//! `SPOOL_DIR/state/<ID>` as one line of JSON.
//!
//! The state is written (temp file, rename) after every attempt but not
//! fsynced: losing it in a crash only means recipients already delivered
//! are tried again, a duplicate and never a loss (DESIGN.md §6). A message
//! without a state file is new: every recipient pending, due now.

use crate::smtp::status::EnhancedStatus;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::envelope::Envelope;

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

/// The state folder of a spool.
#[derive(Clone, Debug)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn open(spool_dir: &Path) -> io::Result<Self> {
        let dir = spool_dir.join("state");
        super::modes::create_folder(&dir)?;
        Ok(StateStore { dir })
    }

    /// The state folder of a spool, for reading only: nothing is created
    /// (`tlsrelay queue list` may run where the relay never did).
    pub fn reader(spool_dir: &Path) -> Self {
        StateStore {
            dir: spool_dir.join("state"),
        }
    }

    /// The saved state, `None` when there is none (or it is unreadable:
    /// then the message starts over, which can duplicate but never lose).
    pub fn load(&self, id: &str) -> Option<DeliveryState> {
        let text = fs::read(self.dir.join(id)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn save(&self, id: &str, state: &DeliveryState) -> io::Result<()> {
        let tmp = self.dir.join(format!("{id}.tmp"));
        let bytes = serde_json::to_vec(state).map_err(io::Error::other)?;
        super::modes::write_private(&tmp, &bytes)?;
        fs::rename(&tmp, self.dir.join(id))
    }

    pub fn remove(&self, id: &str) {
        let _ = fs::remove_file(self.dir.join(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::envelope::Recipient;

    #[test]
    fn state_round_trips_and_missing_means_new() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = StateStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let envelope = Envelope {
            recipients: vec![
                Recipient {
                    address: "a@x.test".into(),
                    orcpt: None,
                    notify: None,
                },
                Recipient {
                    address: "b@y.test".into(),
                    orcpt: None,
                    notify: None,
                },
            ],
            ..Envelope::default()
        };
        assert_eq!(store.load("Q1"), None);
        let mut state = DeliveryState::new(&envelope, 100);
        assert!(!state.done());
        state.recipients[0].status = Status::Delivered;
        state.recipients[1].reason = Some("mx.y.test said: 451 later".into());
        store.save("Q1", &state).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.load("Q1").as_ref(), Some(&state));
        assert_eq!(state.last_reason(), Some("mx.y.test said: 451 later"));
        state.recipients[1].status = Status::Failed;
        assert!(state.done());
        store.remove("Q1");
        assert_eq!(store.load("Q1"), None);
    }

    /// A state written before holds existed has no `held`: not held.
    #[test]
    fn old_states_without_the_hold_still_load() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = StateStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let old = r#"{"attempts":2,"next_attempt":100,"delay_warned":false,"recipients":[{"address":"a@x.test","status":"pending"}]}"#;
        std::fs::write(dir.path().join("state/Q1"), old).unwrap_or_else(|e| panic!("{e}"));
        let state = store.load("Q1").unwrap_or_else(|| panic!("not loaded"));
        assert_eq!((state.attempts, state.held), (2, false));
        let held = DeliveryState {
            held: true,
            ..state
        };
        store.save("Q1", &held).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.load("Q1"), Some(held));
    }

    /// Statuses are typed now; states written before keep loading: a
    /// well-formed code as it was, one that is not (a remote server's
    /// `3.1.1`) as none rather than an unreadable message.
    #[test]
    fn stored_codes_load_as_statuses_and_bad_ones_as_none() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = StateStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let old = r#"{"attempts":1,"next_attempt":100,"delay_warned":false,"recipients":[
            {"address":"a@x.test","status":"pending","code":"4.4.1"},
            {"address":"b@x.test","status":"pending","code":"3.1.1"},
            {"address":"c@x.test","status":"pending","code":null}]}"#;
        std::fs::write(dir.path().join("state/Q1"), old).unwrap_or_else(|e| panic!("{e}"));
        let state = store.load("Q1").unwrap_or_else(|| panic!("not loaded"));
        let codes: Vec<_> = state.recipients.iter().map(|r| r.code).collect();
        assert_eq!(codes, [Some(EnhancedStatus::NO_ANSWER), None, None]);
        store.save("Q1", &state).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(dir.path().join("state/Q1")).unwrap_or_default();
        assert!(text.contains(r#""code":"4.4.1""#), "{text}");
    }
}
