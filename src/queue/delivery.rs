//! What the queue asks of the outbound side, and what an attempt comes
//! to, recipient by recipient: the queue records it in the delivery
//! state, logs it, and bounces or retries on it.
//!
//! The queue names no outbound type: it calls delivery through
//! [`Delivery`], which the outbound side implements
//! (`outbound::queue_delivery`), so layers point one way (outbound uses the
//! queue's envelope, never the reverse).

use std::future::Future;
use std::net::SocketAddr;

use super::body::Body;
use super::envelope::{Envelope, Recipient};
use crate::smtp::status::EnhancedStatus;

/// Delivery as the queue manager uses it.
pub trait Delivery: Send + Sync + 'static {
    /// One attempt of message `id` for its `pending` recipients: one
    /// outcome per recipient. `content` is read as it is sent.
    fn attempt<'a>(
        &'a self,
        id: &'a str,
        envelope: &'a Envelope,
        content: &'a Body,
        pending: &'a [&'a Recipient],
    ) -> impl Future<Output = Vec<RecipientOutcome>> + Send + 'a;

    /// Closes connections kept open for reuse that have waited too long;
    /// called about once a second.
    fn sweep_idle(&self);
}

/// What one recipient's attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientOutcome {
    pub address: String,
    pub verdict: Verdict,
    pub remote_mta: Option<String>,
    /// The address of the server that gave the verdict, if one did.
    pub ip: Option<SocketAddr>,
    /// How that connection was protected (`TLSv1.3 TLS_AES_… verified`,
    /// `plaintext (…)`), for the recipient's log line.
    pub tls: Option<String>,
}

/// The fate of one recipient after one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered {
        reply: String,
    },
    /// Temporary: keep the message and try again.
    Deferred {
        status: EnhancedStatus,
        reason: String,
        /// The remote server's reply as sent, when a server refused
        /// (see [`Verdict::remote_reply`]).
        reply: Option<String>,
    },
    /// Permanent: bounce to the sender.
    Failed {
        status: EnhancedStatus,
        reason: String,
        reply: Option<String>,
    },
}

impl Verdict {
    pub fn is_final(&self) -> bool {
        !matches!(self, Verdict::Deferred { .. })
    }

    /// A permanent failure we decided (no server reply to quote).
    pub fn failed(status: EnhancedStatus, reason: impl Into<String>) -> Verdict {
        Verdict::Failed {
            status,
            reason: reason.into(),
            reply: None,
        }
    }

    /// A temporary failure we decided (no server reply to quote).
    pub fn deferred(status: EnhancedStatus, reason: impl Into<String>) -> Verdict {
        Verdict::Deferred {
            status,
            reason: reason.into(),
            reply: None,
        }
    }

    /// The reply of the server that refused, as it sent it; `None` when
    /// the verdict is ours (no route, no connection, policy). A DSN quotes
    /// it as the `smtp` Diagnostic-Code (RFC 3464 §2.3.6), while `reason`
    /// says it for people, with the host.
    pub fn remote_reply(&self) -> Option<&str> {
        match self {
            Verdict::Deferred { reply, .. } | Verdict::Failed { reply, .. } => reply.as_deref(),
            Verdict::Delivered { .. } => None,
        }
    }
}
