//! Delivery status notifications (RFC 3464, with RFC 3461's parameters and
//! RFC 6533 for SMTPUTF8 messages): the bounce or delay notice sent from
//! `<>` to a message's envelope sender.
//!
//! The notice of a message flagged REQUIRETLS (RFC 8689 §5) returns only
//! the original's headers, whatever `RET` asks: its body was meant to
//! travel only over authenticated TLS, and a notice is sent to an address
//! anyone can forge. The notice itself is flagged too (`Finisher::notify`),
//! so it travels under the same rules.

use std::fmt::Write;

use super::envelope::{Envelope, Recipient, Ret};

/// Whether the notice reports a final failure or a delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Failure,
    Delay,
}

/// What happened to one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientReport {
    pub recipient: Recipient,
    /// RFC 3463 status, such as `5.1.1` or `4.4.1`.
    pub status: crate::smtp::status::EnhancedStatus,
    /// Why, for people: the remote reply with the host, or our reason.
    pub diagnostic: String,
    /// The server that answered, when one did.
    pub remote_mta: Option<String>,
    /// Its reply as sent (`550 5.1.1 user unknown`), when a server refused.
    pub remote_reply: Option<String>,
}

/// Everything a notice says, besides the original message.
pub struct Report<'a> {
    pub kind: Kind,
    pub reporting_mta: &'a str,
    pub queue_id: &'a str,
    pub envelope: &'a Envelope,
    pub recipients: Vec<RecipientReport>,
    /// RFC 5322 dates.
    pub arrival_date: &'a str,
    pub now: &'a str,
    /// For delays: when we will give up.
    pub retry_until: Option<&'a str>,
    /// `[queue] return_content_limit`: the most of the message returned.
    pub return_limit: usize,
}

impl Report<'_> {
    /// The recipients this notice may speak of: `NOTIFY` allows it (absent
    /// means failures and delays), and the sender is not `<>` (a bounce is
    /// never bounced, RFC 5321 §4.5.5).
    pub fn wanted(&self) -> Vec<&RecipientReport> {
        if self.envelope.sender.is_empty() {
            return Vec::new();
        }
        self.recipients
            .iter()
            .filter(|r| match (r.recipient.notify, self.kind) {
                (None, _) => true,
                (Some(n), Kind::Failure) => n.failure,
                (Some(n), Kind::Delay) => n.delay,
            })
            .collect()
    }

    /// Why nobody hears of this notice, for the log line that says so;
    /// `None` when someone does.
    pub fn withheld(&self) -> Option<&'static str> {
        if self.envelope.sender.is_empty() {
            return Some("the sender is <>, and a bounce is never bounced (RFC 5321 §4.5.5)");
        }
        self.wanted()
            .is_empty()
            .then_some("NOTIFY excludes it for every recipient (RFC 3461 §4.1)")
    }

    /// The notice as message content (CRLF lines), or `None` when nobody
    /// wants it.
    pub fn render(&self, original: &[u8], boundary: &str) -> Option<Vec<u8>> {
        let wanted = self.wanted();
        if wanted.is_empty() {
            return None;
        }
        let global = self.envelope.smtputf8;
        let mut out = String::new();
        let subject = match self.kind {
            Kind::Failure => "Undelivered Mail Returned to Sender",
            Kind::Delay => "Delayed Mail (still being retried)",
        };
        let _ = write!(
            out,
            "From: Mail Delivery System <MAILER-DAEMON@{mta}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {now}\r\n\
             Message-ID: <{id}.{kind}@{mta}>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n\
             This is a MIME-encapsulated message.\r\n\r\n",
            mta = self.reporting_mta,
            to = self.envelope.sender,
            now = self.now,
            id = self.queue_id,
            kind = if self.kind == Kind::Failure { "bounce" } else { "delay" },
        );
        let _ = write!(
            out,
            "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        );
        out.push_str(&self.human_text(&wanted));
        let status_type = if global {
            "message/global-delivery-status"
        } else {
            "message/delivery-status"
        };
        let _ = write!(
            out,
            "\r\n--{boundary}\r\nContent-Type: {status_type}\r\n\r\n"
        );
        out.push_str(&self.machine_text(&wanted));
        let (part_type, body) = self.returned(original, global);
        let _ = write!(out, "\r\n--{boundary}\r\nContent-Type: {part_type}\r\n\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        if !bytes.ends_with(b"\r\n") {
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Some(bytes)
    }

    fn human_text(&self, wanted: &[&RecipientReport]) -> String {
        let mut text = match self.kind {
            Kind::Failure => format!(
                "This is the mail system at {}.\r\n\r\nYour message could not be delivered to the recipients below.\r\nThe reason each failed is given with it.\r\n\r\n",
                self.reporting_mta
            ),
            Kind::Delay => format!(
                "This is the mail system at {}.\r\n\r\nYour message has not been delivered yet to the recipients below.\r\nIt is still being retried{}; you need not send it again.\r\n\r\n",
                self.reporting_mta,
                self.retry_until.map_or(String::new(), |t| format!(" until {t}"))
            ),
        };
        for r in wanted {
            let _ = write!(
                text,
                "<{}>: {}\r\n",
                r.recipient.address,
                one_line(&r.diagnostic)
            );
        }
        if self.envelope.requiretls {
            text.push_str(&requiretls_text(wanted));
        }
        text
    }

    /// The `message/delivery-status` body (RFC 3464 §2.2, §2.3).
    fn machine_text(&self, wanted: &[&RecipientReport]) -> String {
        let mut text = format!(
            "Reporting-MTA: dns; {}\r\nX-Queue-ID: {}\r\n",
            self.reporting_mta, self.queue_id
        );
        if let Some(envid) = &self.envelope.envid {
            let _ = write!(text, "Original-Envelope-Id: {}\r\n", one_line(envid));
        }
        let _ = write!(text, "Arrival-Date: {}\r\n", self.arrival_date);
        for r in wanted {
            let _ = write!(
                text,
                "\r\nFinal-Recipient: rfc822; {}\r\n",
                r.recipient.address
            );
            if let Some(orcpt) = &r.recipient.orcpt {
                let _ = write!(text, "Original-Recipient: rfc822; {}\r\n", one_line(orcpt));
            }
            let action = match self.kind {
                Kind::Failure => "failed",
                Kind::Delay => "delayed",
            };
            let _ = write!(text, "Action: {action}\r\nStatus: {}\r\n", r.status);
            if let Some(mta) = &r.remote_mta {
                let _ = write!(text, "Remote-MTA: dns; {mta}\r\n");
            }
            // RFC 3464 §2.3.6: type "smtp" quotes the server's reply. A
            // reason of our own (no route, no connection) is no SMTP reply,
            // so it gets a private type, as Postfix's "X-Postfix".
            let diagnostic = match &r.remote_reply {
                Some(reply) => format!("smtp; {}", one_line(reply)),
                None => format!("X-tlsrelay; {}", one_line(&r.diagnostic)),
            };
            let _ = write!(
                text,
                "Diagnostic-Code: {diagnostic}\r\nLast-Attempt-Date: {}\r\n",
                self.now
            );
            if let (Kind::Delay, Some(until)) = (self.kind, self.retry_until) {
                let _ = write!(text, "Will-Retry-Until: {until}\r\n");
            }
        }
        text
    }

    /// The original, whole or headers only, per `RET` (RFC 3461 §4.3)
    /// and `return_limit`. The sender of a message may be forged, so a
    /// notice never reflects more than `return_limit` bytes of it, as
    /// Postfix's `bounce_size_limit`: above it, `RET=FULL` (or no `RET`)
    /// gets the headers alone, and headers longer than the limit are cut
    /// after the last whole line within it. A message flagged REQUIRETLS
    /// gets its headers alone, whatever `RET` (RFC 8689 §5).
    fn returned<'o>(&self, original: &'o [u8], global: bool) -> (&'static str, &'o [u8]) {
        let full = match self.envelope.ret {
            _ if self.envelope.requiretls => false,
            Some(Ret::Full) | None => original.len() <= self.return_limit,
            Some(Ret::Hdrs) => false,
        };
        match (full, global) {
            (true, false) => ("message/rfc822", original),
            (true, true) => ("message/global", original),
            (false, false) => (
                "text/rfc822-headers",
                at_most(headers(original), self.return_limit),
            ),
            (false, true) => (
                "message/global-headers",
                at_most(headers(original), self.return_limit),
            ),
        }
    }
}

/// What the sender of a message flagged REQUIRETLS needs to know: why
/// the body is not returned, and what a `5.7.30` means.
fn requiretls_text(wanted: &[&RecipientReport]) -> String {
    let mut text = String::from(
        "\r\nYour message required TLS (REQUIRETLS, RFC 8689): it may travel only over\r\n\
         authenticated, encrypted connections. This notice travels under the same\r\n\
         requirement and returns only the headers of your message, not its body.\r\n",
    );
    let needed = crate::smtp::status::EnhancedStatus::REQUIRETLS_NEEDED;
    if wanted.iter().any(|r| r.status == needed) {
        let _ = write!(
            text,
            "A recipient marked {needed} could not be reached that way: no server for its\r\n\
             domain was authenticated, showed a verified certificate and offered REQUIRETLS.\r\n"
        );
    }
    text
}

/// `text` up to its last line end within `limit` bytes (all of it when
/// it fits).
fn at_most(text: &[u8], limit: usize) -> &[u8] {
    if text.len() <= limit {
        return text;
    }
    match text[..limit].windows(2).rposition(|w| w == b"\r\n") {
        Some(end) => &text[..end + 2],
        None => &[],
    }
}

/// The header section of a message, up to and including the empty line.
pub(crate) fn headers(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[..end + 4],
        None => message,
    }
}

/// Text from a remote server, made safe for one header line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(900)
        .collect()
}

#[cfg(test)]
#[path = "dsn_tests.rs"]
mod tests;
