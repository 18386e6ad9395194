//! The log lines of a connection that an administrator greps for
//! (DESIGN §7): `message accepted` with everything about the message, and
//! `refused` for every refusal, with the client, its connector and what
//! was refused.

use std::net::SocketAddr;

use super::Driver;
use crate::inbound::session::{Context, Output, Session};

impl Driver<'_> {
    /// The acceptance line: everything about the message an administrator
    /// asks first (Postfix's `queued` line), under its queue id.
    pub(super) async fn log_accepted(&mut self, id: &str, session: &mut Session) {
        self.learn_name(session).await;
        let envelope = session.envelope();
        let recipients: Vec<&str> = envelope
            .map(|e| e.recipients.iter().map(|r| r.address.as_str()).collect())
            .unwrap_or_default();
        let message_id = session.message_id();
        tracing::info!(
            queue_id = id,
            client = %self.peer,
            client_name = session.reverse_name().unwrap_or("unknown"),
            connector = session.connector_name().unwrap_or("-"),
            tls = session.tls_version().unwrap_or("plaintext"),
            cipher = session.tls().map_or("-", |t| t.cipher.as_str()),
            from = envelope.map_or("", |e| e.sender.as_str()),
            to = recipients.join(",").as_str(),
            recipients = recipients.len(),
            size = session.content_size().unwrap_or(0),
            requiretls = envelope.is_some_and(|e| e.requiretls),
            message_id = message_id.as_deref().unwrap_or("-"),
            "message accepted"
        );
    }

    /// The one place every refusal is logged (DESIGN §7): each `4xx`/`5xx`
    /// reply the session gave, or a TLS handshake that failed (`reason`,
    /// no reply), with the client, its connector and what was refused.
    /// The message is `refused` throughout, so one grep finds them all.
    pub(super) async fn log_refusals(&mut self, session: &mut Session, out: &mut Output) {
        if out.refusals.is_empty() {
            return;
        }
        self.learn_name(session).await;
        for refusal in out.refusals.drain(..) {
            log_refusal(
                self.peer,
                session,
                &refusal.context,
                Some(&refusal.reply),
                None,
            );
        }
    }
}

/// Logs one refusal: the reply sent, or for a failed TLS handshake the
/// reason. Client-controlled text goes in as `&str` fields, which both
/// log formats quote and escape.
pub(super) fn log_refusal(
    peer: SocketAddr,
    session: &Session,
    context: &Context,
    reply: Option<&str>,
    reason: Option<&str>,
) {
    tracing::info!(
        client = %peer,
        client_name = session.reverse_name().unwrap_or("unknown"),
        connector = session.connector_name().unwrap_or("-"),
        tls = session.tls_version().unwrap_or("plaintext"),
        command = context.command.as_str(),
        address = context.address.as_deref().unwrap_or("-"),
        from = context.sender.as_deref().unwrap_or("-"),
        phase = context.phase.unwrap_or("-"),
        reply = reply.unwrap_or("-"),
        reason = reason.unwrap_or("-"),
        "refused"
    );
}
