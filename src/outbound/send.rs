//! The mail transaction on a connection the ladder made ready (or a kept
//! one): what the server's EHLO rules out before MAIL (SMTPUTF8, SIZE),
//! then MAIL, RCPT, and the content by DATA or BDAT, judged per recipient.

use super::client::{Client, Phase};
use super::outcome::{deciding_reply, judge, Verdict};
use super::stream::Stream;
use crate::queue::body::Body;
use crate::queue::envelope::{Envelope, Recipient};
use crate::smtp::status::EnhancedStatus;

/// One message's recipients for one domain.
#[derive(Clone, Copy)]
pub(super) struct Job<'a> {
    pub(super) queue_id: &'a str,
    pub(super) envelope: &'a Envelope,
    /// Read as it is sent.
    pub(super) content: &'a Body,
    /// The start of the content: its header section, as far as
    /// [`super::requiretls::HEAD_LIMIT`].
    pub(super) head: &'a [u8],
    pub(super) group: &'a [&'a Recipient],
    /// `[delivery] chunking`: BDAT where the server offers it.
    pub(super) chunking: bool,
}

/// The transaction on a ready client, judged per recipient; a broken
/// conversation defers everyone (the next attempt may use another host).
/// The client comes back when the conversation ended cleanly, for reuse.
/// No verdicts at all: a kept connection failed its RSET (sent in front of
/// MAIL), before anything of this message went out; try a new connection.
pub(super) async fn converse(
    mut client: Client<Stream>,
    job: &Job<'_>,
    host: &str,
    log: impl Fn(&str),
) -> (Vec<Verdict>, Option<Client<Stream>>) {
    let Job {
        envelope,
        content,
        group,
        chunking,
        ..
    } = *job;
    client.chunking = chunking;
    if envelope.smtputf8 && !client.capabilities.smtputf8 {
        log("refused: next hop lacks SMTPUTF8");
        let reason =
            format!("{host} does not support SMTPUTF8, which this message needs (RFC 6531)");
        let verdict = Verdict::failed(EnhancedStatus::NO_SMTPUTF8, reason);
        return (vec![verdict; group.len()], Some(client));
    }
    if let Some(limit) = client.capabilities.size {
        if content.len() > limit {
            log("refused: message larger than the next hop's SIZE");
            let reason = format!(
                "{host} accepts at most {limit} bytes; the message has {}",
                content.len()
            );
            let verdict = Verdict::failed(EnhancedStatus::TOO_BIG, reason);
            return (vec![verdict; group.len()], Some(client));
        }
    }
    match client.transaction(envelope, group, content).await {
        Ok(transaction) => {
            let verdicts = judge(&transaction, group.len(), host);
            let result = deciding_reply(&transaction).summary();
            log(&result);
            (verdicts, Some(client))
        }
        // Only a kept connection sends RSET: it went stale before any of
        // the message left; no verdicts, the caller opens a new one.
        Err(e) if matches!(e.phase(), Phase::Rset) => {
            tracing::debug!(host, error = %e, "kept connection unusable");
            (Vec::new(), None)
        }
        Err(e) => {
            log(&e.to_string());
            (vec![Verdict::from_error(&e, host); group.len()], None)
        }
    }
}
