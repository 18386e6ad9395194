//! Administrators' requests (`tlsrelay queue retry|delete|bounce|hold|
//! release`) as the manager's loop carries them out: at once on the board,
//! in a task for anything that touches files, or held until the message's
//! attempt is over.

use super::board::Board;
use super::{now, Context, Done, QueueManager, Selected, Then};
use crate::queue::blocking;
use crate::queue::bulk::{self, Action, Selection};
use crate::queue::control::{Command, Request, Response};
use crate::queue::delivery::Delivery;

/// What the loop does once [`QueueManager::command`] returns.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(super) enum After {
    Nothing,
    /// `retry --all` was answered: every waiting message is to be made
    /// due, after the answer is on its way.
    RetryAll,
}

impl<D: Delivery> QueueManager<D> {
    /// Carries out an administrator's request, or holds it until the
    /// message's attempt in progress is over. Whatever reads or changes
    /// files runs in a task; the message is busy meanwhile. `retry --all`
    /// is answered here and returns [`After::RetryAll`]: the loop makes
    /// the queue due once the answer is on its way.
    pub(super) fn command(
        &self,
        board: &mut Board,
        (request, reply): Command,
        ctx: &mut Context,
    ) -> After {
        let worker = self.worker.get();
        let id = match &request {
            Request::Retry { id: None } => {
                // The answer first: nothing else on the board moves before
                // the loop's pass ends, so no later request can tell.
                let (count, busy) = (board.waiting_count(), board.busy_count());
                let _ = reply.send(Response::ok(format!(
                    "{count} message(s) due now{}",
                    match busy {
                        0 => String::new(),
                        n => format!(
                            ", {n} being delivered already (tried again at once if deferred)"
                        ),
                    }
                )));
                return After::RetryAll;
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
                return After::Nothing;
            }
            // The control socket answers these itself.
            Request::TlsMemoryList | Request::TlsMemoryForget { .. } => {
                let _ = reply.send(Response::error("not a queue request"));
                return After::Nothing;
            }
        };
        // The board knows every queued message: no need to ask the disk.
        if !board.queued(&id) {
            let _ = reply.send(Response::error(format!(
                "{id}: no such message in the queue"
            )));
            return After::Nothing;
        }
        if board.busy(&id) {
            if matches!(request, Request::Retry { .. }) {
                let _ = reply.send(Response::ok(format!(
                    "{id}: being delivered now; tried again at once if deferred"
                )));
                board.retry_after(&id);
            } else {
                board.held.entry(id).or_default().push((request, reply));
            }
            return After::Nothing;
        }
        match request {
            Request::Retry { .. } if board.on_hold(&id) => {
                let _ = reply.send(Response::error(format!(
                    "{id}: on hold, not tried; `tlsrelay queue release {id}` first"
                )));
            }
            Request::Retry { .. } => {
                board.schedule(&id, now());
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
        After::Nothing
    }

    /// `delete --all`, `hold`, `release`, once their messages are selected:
    /// each selected message at once (in a task), or, while it is being
    /// attempted, when its attempt is over.
    pub(super) fn bulk(&self, board: &mut Board, selected: Selected, ctx: &mut Context) {
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
            if board.busy(&id) {
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
