//! How the rest of the relay tells the queue manager about a message
//! just committed: the inbound side after its `250`, and a notice queued
//! by the queue itself. A handle is all the inbound side knows of the queue
//! manager.

use tokio::sync::mpsc;

use super::backlog::Backlog;

/// Tells the manager about messages the inbound side just committed, and
/// shows how far delivery is behind.
#[derive(Clone)]
pub struct QueueHandle {
    pub(super) sender: mpsc::UnboundedSender<String>,
    pub(super) backlog: Backlog,
}

impl QueueHandle {
    pub fn queued(&self, id: &str) {
        let _ = self.sender.send(id.to_string());
    }

    /// The messages due now and waiting for a delivery slot, as the
    /// manager counted them last (for inbound flow control).
    pub fn backlog(&self) -> Backlog {
        self.backlog.clone()
    }
}
