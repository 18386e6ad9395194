//! What an attempt means for each recipient: delivered, deferred (try
//! again), or failed (bounce). One place decides, from the server's reply
//! codes (RFC 5321 §4.2.1) or the kind of error, so the delivery loop only
//! asks.

use super::client::{ClientError, Transaction};
pub use crate::queue::delivery::Verdict;
use crate::smtp::reply::Reply;
use crate::smtp::status::EnhancedStatus;

impl Verdict {
    /// For a reply that refused: deferred on 4xx, failed on 5xx (and on
    /// anything nonsensical, treated as temporary).
    pub fn from_refusal(reply: &Reply, host: &str) -> Verdict {
        let reason = format!("{host} said: {}", reply.summary());
        let sent = Some(reply.as_sent());
        match reply.code {
            500..=599 => Verdict::Failed {
                status: status(reply, EnhancedStatus::PERMANENT),
                reason,
                reply: sent,
            },
            _ => Verdict::Deferred {
                status: status(reply, EnhancedStatus::TRANSIENT),
                reason,
                reply: sent,
            },
        }
    }

    /// On a plaintext connection after TLS failed (the ladder's last rung):
    /// a `530` refusal ("Must issue a STARTTLS command first", RFC 3207
    /// §4) says the server insists on the TLS we could not agree, which
    /// may work another time: the mail waits instead of bouncing.
    pub fn after_fallback(self) -> Verdict {
        match self {
            Verdict::Failed { reason, reply, .. }
                if reply.as_deref().is_some_and(|r| r.starts_with("530")) =>
            {
                Verdict::Deferred {
                    status: EnhancedStatus::SECURITY,
                    reason: format!("{reason} (it insists on TLS, which failed on every TLS rung)"),
                    reply,
                }
            }
            other => other,
        }
    }

    /// A conversation that broke off: always temporary.
    pub fn from_error(error: &ClientError, host: &str) -> Verdict {
        let status = match error {
            ClientError::Timeout(_) | ClientError::Stalled(_) => EnhancedStatus::BAD_CONNECTION,
            ClientError::Io(..) | ClientError::Closed(_) => EnhancedStatus::BAD_CONNECTION,
            ClientError::Protocol(..) => EnhancedStatus::PROTOCOL,
            ClientError::Content(_) => EnhancedStatus::TRANSIENT,
        };
        Verdict::deferred(status, format!("{host}: {error}"))
    }
}

/// The enhanced status code of a reply, or `default` when it has none.
fn status(reply: &Reply, default: EnhancedStatus) -> EnhancedStatus {
    reply.status().unwrap_or(default)
}

/// The reply that sums a transaction up, for the attempt's log line: a
/// refused MAIL decides for every recipient (the RCPTs pipelined behind
/// it only got `503`, RFC 2920 §3.1), else the reply to the content, else
/// the last RCPT's.
pub fn deciding_reply(transaction: &Transaction) -> &Reply {
    if !transaction.mail.is_positive() {
        return &transaction.mail;
    }
    transaction
        .data
        .as_ref()
        .or(transaction.rcpts.last())
        .unwrap_or(&transaction.mail)
}

/// One verdict per recipient of a transaction, in order.
pub fn judge(transaction: &Transaction, recipients: usize, host: &str) -> Vec<Verdict> {
    if !transaction.mail.is_positive() {
        return vec![Verdict::from_refusal(&transaction.mail, host); recipients];
    }
    (0..recipients)
        .map(|i| match transaction.rcpts.get(i) {
            None => Verdict::deferred(
                EnhancedStatus::PROTOCOL,
                format!("{host}: no reply to RCPT"),
            ),
            Some(rcpt) if !rcpt.is_positive() => Verdict::from_refusal(rcpt, host),
            Some(_) => match &transaction.data {
                Some(reply) if reply.is_positive() => Verdict::Delivered {
                    reply: format!("{host} said: {}", reply.summary()),
                },
                Some(reply) => Verdict::from_refusal(reply, host),
                None => Verdict::deferred(
                    EnhancedStatus::PROTOCOL,
                    format!("{host}: the message content was not taken"),
                ),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::reply::ReplyReader;

    fn reply(text: &str) -> Reply {
        let mut input = text.as_bytes();
        match ReplyReader::new().read(&mut input) {
            Ok(Some(reply)) => reply,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn kinds(verdicts: &[Verdict]) -> Vec<&'static str> {
        verdicts
            .iter()
            .map(|v| match v {
                Verdict::Delivered { .. } => "delivered",
                Verdict::Deferred { .. } => "deferred",
                Verdict::Failed { .. } => "failed",
            })
            .collect()
    }

    #[test]
    fn per_recipient_verdicts() {
        let tx = Transaction {
            mail: reply("250 ok\r\n"),
            rcpts: vec![
                reply("250 ok\r\n"),
                reply("550 5.1.1 unknown\r\n"),
                reply("452 4.2.2 full\r\n"),
            ],
            data: Some(reply("250 2.0.0 queued\r\n")),
        };
        let verdicts = judge(&tx, 3, "mx.b.test");
        assert_eq!(kinds(&verdicts), ["delivered", "failed", "deferred"]);
        assert_eq!(
            verdicts[1],
            Verdict::Failed {
                status: EnhancedStatus::BAD_MAILBOX,
                reason: "mx.b.test said: 550 unknown".into(),
                reply: Some("550 5.1.1 unknown".into()),
            }
        );
        assert_eq!(
            verdicts[2],
            Verdict::Deferred {
                status: EnhancedStatus::MAILBOX_FULL,
                reason: "mx.b.test said: 452 full".into(),
                reply: Some("452 4.2.2 full".into()),
            }
        );
    }

    #[test]
    fn refused_sender_or_content_decides_for_everyone_accepted() {
        let mail_refused = Transaction {
            mail: reply("421 busy\r\n"),
            rcpts: vec![],
            data: None,
        };
        assert_eq!(
            kinds(&judge(&mail_refused, 2, "h")),
            ["deferred", "deferred"]
        );
        let content_refused = Transaction {
            mail: reply("250 ok\r\n"),
            rcpts: vec![reply("250 ok\r\n"), reply("550 no\r\n")],
            data: Some(reply("554 5.6.0 spam\r\n")),
        };
        let verdicts = judge(&content_refused, 2, "h");
        assert_eq!(kinds(&verdicts), ["failed", "failed"]);
        assert!(
            matches!(&verdicts[0], Verdict::Failed { status, .. } if status.to_string() == "5.6.0")
        );
    }

    #[test]
    fn a_530_after_tls_failed_waits_instead_of_bouncing() {
        let refused = Verdict::from_refusal(
            &reply("530 5.7.0 Must issue a STARTTLS command first\r\n"),
            "mx.test",
        );
        assert!(refused.is_final());
        let waits = refused.after_fallback();
        assert!(
            matches!(&waits, Verdict::Deferred { status, reason, .. } if *status == EnhancedStatus::SECURITY && reason.contains("insists on TLS")),
            "{waits:?}"
        );
        let other = Verdict::from_refusal(&reply("550 5.1.1 no such user\r\n"), "mx.test");
        assert_eq!(other.clone().after_fallback(), other);
    }

    #[test]
    fn broken_conversations_are_temporary() {
        let verdict = Verdict::from_error(
            &ClientError::Closed(super::super::client::Phase::DataEnd),
            "mx.b.test",
        );
        assert_eq!(
            verdict,
            Verdict::Deferred {
                status: EnhancedStatus::BAD_CONNECTION,
                reason: "mx.b.test: connection closed by the server during end of data".into(),
                reply: None,
            }
        );
        assert!(!verdict.is_final());
    }
}
