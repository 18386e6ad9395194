//! Which messages an administrator's command means, and what it does to
//! each: the `postsuper`-like forms of `tlsrelay queue` (`delete --all`,
//! `hold`, `release`, `list --domain … --deferred --held`).
//!
//! The same selection and the same per-message step serve the running
//! relay's queue manager and the commands that act on the files when no
//! relay runs ([`admin`](super::admin)), so both mean the same messages.
//!
//! A held message stays in the queue with `held` set in its state
//! ([`DeliveryState::held`]): the queue manager never schedules it, so it
//! is neither delivered nor expired (no `max_age` bounce, no delay notice)
//! until it is released, across restarts.

use serde::{Deserialize, Serialize};

use super::envelope::Envelope;
use super::finish::Finisher;
use super::spool::{Spool, SpoolError};
use super::state::{DeliveryState, StateStore, Status};
use crate::config::domain::MailDomain;

/// What a bulk command does to each message it selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Remove without telling anyone (`postsuper -d`).
    Delete,
    /// Keep, but never deliver or expire (`postsuper -h`).
    Hold,
    /// Deliver again, at once (`postsuper -H`).
    Release,
}

impl Action {
    /// The past participle for "3 message(s) held".
    pub fn done(self) -> &'static str {
        match self {
            Action::Delete => "deleted",
            Action::Hold => "held",
            Action::Release => "released",
        }
    }
}

/// Which messages: one by its id, or every one a filter matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    Id(String),
    Matching(Filter),
}

/// Conditions a message must meet, all of them; the default matches all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// A recipient domain: some recipient still pending is in it, compared
    /// in the canonical form (`config::domain`), so `Bücher.test` and
    /// `xn--bcher-kva.test` are one domain.
    #[serde(with = "domain_text")]
    pub domain: Option<MailDomain>,
    /// Only messages that had a failed attempt already (Postfix's
    /// deferred queue).
    pub deferred: bool,
    /// Only messages on hold.
    pub held: bool,
}

impl Filter {
    /// True when the message with `envelope` and saved `state` (`None`:
    /// never attempted, everyone pending) meets every condition.
    pub fn matches(&self, envelope: &Envelope, state: Option<&DeliveryState>) -> bool {
        let held = state.is_some_and(|s| s.held);
        let attempted = state.is_some_and(|s| s.attempts > 0);
        if (self.held && !held) || (self.deferred && !attempted) {
            return false;
        }
        let Some(domain) = &self.domain else {
            return true;
        };
        let in_domain =
            |address: &str| matches!(MailDomain::of_address(address), Some(Ok(d)) if &d == domain);
        match state {
            Some(state) => state.pending().any(|r| in_domain(&r.address)),
            None => envelope.recipients.iter().any(|r| in_domain(&r.address)),
        }
    }
}

/// The ids `selection` means in `spool`, oldest first. An id that is not
/// queued is an error (the administrator's: exit 1); a filter that matches
/// nothing is an empty list.
pub fn select(
    spool: &Spool,
    states: &StateStore,
    selection: &Selection,
) -> Result<Vec<String>, SelectError> {
    let filter = match selection {
        Selection::Id(id) if spool.contains(id) => return Ok(vec![id.clone()]),
        Selection::Id(id) => return Err(SelectError::NoSuchMessage(id.clone())),
        Selection::Matching(filter) => filter,
    };
    let mut ids = Vec::new();
    for id in spool.list()? {
        match spool.read_envelope(&id) {
            Ok(envelope) if filter.matches(&envelope, states.load(&id).as_ref()) => ids.push(id),
            Ok(_) => {}
            // Gone meanwhile, or not readable: not the administrator's
            // message to act on (the relay quarantines the unreadable).
            Err(_) => {}
        }
    }
    Ok(ids)
}

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("{0}: no such message in the queue")]
    NoSuchMessage(String),
    #[error("{0}")]
    Spool(#[from] SpoolError),
}

/// Does `action` to message `id`; false when there was nothing to do (held
/// already, not on hold, gone). The caller keeps the schedule in step.
pub fn act(finish: &Finisher, action: Action, id: &str) -> bool {
    match action {
        Action::Delete => {
            let queued = finish.spool.contains(id);
            if queued {
                finish.delete(id);
            }
            queued
        }
        Action::Hold | Action::Release => set_held(finish, id, action == Action::Hold),
    }
}

/// Sets or clears the hold in the message's state, creating the state of a
/// message never attempted (everyone pending).
fn set_held(finish: &Finisher, id: &str, held: bool) -> bool {
    let (spool, states) = (&finish.spool, &finish.states);
    let state = match states.load(id) {
        Some(state) => state,
        None => match spool.read_envelope(id) {
            Ok(envelope) => DeliveryState::new(&envelope, now()),
            Err(_) => return false,
        },
    };
    if state.held == held {
        return false;
    }
    let mut state = DeliveryState { held, ..state };
    if !held {
        // Released: tried at once.
        state.next_attempt = now();
    }
    if let Err(e) = states.save(id, &state) {
        tracing::error!(queue_id = id, error = %e, "could not save the hold");
        return false;
    }
    let pending = state
        .recipients
        .iter()
        .filter(|r| r.status == Status::Pending)
        .count();
    match held {
        true => tracing::info!(queue_id = id, pending, "held by the administrator"),
        false => tracing::info!(queue_id = id, pending, "released by the administrator"),
    }
    true
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// What the command prints: `3 message(s) held`, or about one message.
/// `later` messages were being attempted: the action waits for the end
/// of their attempt.
pub fn summary(action: Action, selection: &Selection, done: usize, later: usize) -> String {
    let did = action.done();
    match selection {
        Selection::Id(id) if later > 0 => {
            format!("{id}: being delivered now; {did} when the attempt ends, unless it delivers")
        }
        Selection::Id(id) if done > 0 => format!("{id}: {did}"),
        Selection::Id(id) => match action {
            Action::Hold => format!("{id}: on hold already"),
            Action::Release => format!("{id}: not on hold"),
            Action::Delete => format!("{id}: gone already"),
        },
        Selection::Matching(_) if later > 0 => format!(
            "{done} message(s) {did}, {later} being delivered now ({did} when the attempt ends, unless it delivers)"
        ),
        Selection::Matching(_) => format!("{done} message(s) {did}"),
    }
}

/// A domain on the control socket: its canonical text, parsed again.
mod domain_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::config::domain::MailDomain;

    pub fn serialize<S: Serializer>(
        domain: &Option<MailDomain>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match domain {
            Some(domain) => serializer.serialize_some(&domain.to_string()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<MailDomain>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| text.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::envelope::Recipient;

    fn envelope(addresses: &[&str]) -> Envelope {
        Envelope {
            recipients: addresses
                .iter()
                .map(|a| Recipient {
                    address: (*a).into(),
                    orcpt: None,
                    notify: None,
                })
                .collect(),
            ..Envelope::default()
        }
    }

    fn domain(text: &str) -> Filter {
        Filter {
            domain: Some(text.parse().unwrap_or_else(|e| panic!("{e}"))),
            ..Filter::default()
        }
    }

    #[test]
    fn a_domain_matches_pending_recipients_in_canonical_form() {
        let message = envelope(&["a@Bücher.TEST", "b@other.test"]);
        assert!(domain("xn--bcher-kva.test").matches(&message, None));
        assert!(domain("BÜCHER.test.").matches(&message, None));
        assert!(!domain("sub.bücher.test").matches(&message, None));
        // Delivered already: no longer the message's business in that domain.
        let mut state = DeliveryState::new(&message, 0);
        state.recipients[0].status = Status::Delivered;
        assert!(!domain("bücher.test").matches(&message, Some(&state)));
        assert!(domain("other.test").matches(&message, Some(&state)));
    }

    #[test]
    fn deferred_means_attempted_and_held_means_held() {
        let message = envelope(&["a@x.test"]);
        let deferred = Filter {
            deferred: true,
            ..Filter::default()
        };
        let held = Filter {
            held: true,
            ..Filter::default()
        };
        assert!(Filter::default().matches(&message, None));
        assert!(!deferred.matches(&message, None));
        assert!(!held.matches(&message, None));
        let mut state = DeliveryState::new(&message, 0);
        state.attempts = 1;
        assert!(deferred.matches(&message, Some(&state)));
        assert!(!held.matches(&message, Some(&state)));
        state.held = true;
        assert!(held.matches(&message, Some(&state)));
    }
}
