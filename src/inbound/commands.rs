//! SMTP commands (RFC 5321 §4.1) as the session answers them. Parsing is
//! smtp-proto's; the rules are ours.

use smtp_proto::{Error as ParseError, Request};

use super::policy::RecipientVerdict;
use super::session::{Action, Output, Phase, Session};
use crate::config::domain::DomainError;
use crate::queue::envelope::{Envelope, Notify, Recipient, Ret};
use crate::smtp::data::{BdatReceiver, Content};
use crate::smtp::literal;

impl Session {
    /// Answers one complete command line (ending in LF).
    pub(super) fn command(&mut self, line: &[u8], out: &mut Output) -> Action {
        let sender = self.envelope.as_ref().map(|e| e.sender.as_str());
        out.context = super::session::Context::of_line(line, sender);
        if self.shutting_down {
            self.closing(
                out,
                "4.3.2",
                "Service shutting down, closing transmission channel",
            );
            self.phase = Phase::Waiting;
            return Action::Close;
        }
        if line.contains(&0) {
            return self.error(out, 500, "5.5.2", "NUL character in command");
        }
        // smtp-proto reads arguments lossily: invalid UTF-8 would reach
        // the envelope, the greeting and the Received header as U+FFFD.
        // RFC 6531 §3.3 allows only well-formed UTF-8, and only with SMTPUTF8.
        if std::str::from_utf8(line).is_err() {
            return self.error(out, 500, "5.5.2", "Invalid UTF-8 in command");
        }
        // An address literal is hidden from smtp-proto, which refuses `[`.
        let masked = literal::mask(line);
        let parsed = masked.as_ref().map_or(line, |m| &m.line[..]);
        let literal = masked.as_ref().map(|m| m.literal.as_str());
        let request = match Request::parse(&mut parsed.iter()) {
            Ok(request) => request,
            Err(error) => return self.parse_error(line, error, out),
        };
        match request {
            Request::Ehlo { host } => self.hello(&host, true, out),
            Request::Helo { host } => self.hello(&host, false, out),
            Request::StartTls => return self.starttls(out),
            Request::Mail { from } => return self.mail(from, literal, out),
            Request::Rcpt { to } => return self.rcpt(line, to, literal, out),
            Request::Data => return self.data(out),
            Request::Bdat { chunk_size, is_last } => {
                if !bdat_syntax_ok(line, chunk_size) {
                    return self.error(out, 501, "5.5.4", BDAT_SYNTAX);
                }
                return self.bdat(chunk_size, is_last, out);
            }
            Request::Rset => {
                let open = self.queue_id.is_some();
                self.end_transaction();
                out.reply(250, "2.0.0", "Ok");
                if open {
                    return Action::Abort;
                }
            }
            Request::Noop { .. } => out.reply(250, "2.0.0", "Ok"),
            Request::Vrfy { .. } => out.reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"),
            Request::Help { .. } => out.reply(214, "2.0.0", "See RFC 5321; commands: EHLO HELO STARTTLS MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT"),
            Request::Quit => {
                out.reply(221, "2.0.0", "Bye");
                self.phase = Phase::Waiting;
                return Action::Close;
            }
            Request::Lhlo { .. } | Request::Auth { .. } | Request::Expn { .. } | Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                return self.error(out, 502, "5.5.1", "Command not implemented");
            }
        }
        Action::None
    }

    fn parse_error(&mut self, line: &[u8], error: ParseError, out: &mut Output) -> Action {
        let verb = line
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .map(u8::to_ascii_uppercase)
            .collect::<Vec<u8>>();
        let (code, status, text) = match error {
            ParseError::UnknownCommand => (
                500,
                "5.5.2",
                "Syntax error, command unrecognized".to_string(),
            ),
            ParseError::InvalidSenderAddress => {
                (501, "5.1.7", "Bad sender address syntax".to_string())
            }
            ParseError::InvalidRecipientAddress => {
                (501, "5.1.3", "Bad recipient address syntax".to_string())
            }
            ParseError::SyntaxError { syntax } => (501, "5.5.4", format!("Syntax: {syntax}")),
            ParseError::InvalidParameter { param } => {
                (501, "5.5.4", format!("Invalid {param} parameter"))
            }
            ParseError::UnsupportedParameter { param } => {
                (555, "5.5.4", format!("Unsupported parameter {param}"))
            }
            ParseError::ResponseTooLong => (500, "5.5.2", "Line too long".to_string()),
            ParseError::NeedsMoreData { .. } | ParseError::InvalidResponse { .. } => {
                (500, "5.5.2", "Syntax error".to_string())
            }
        };
        if verb == b"HELO" || verb == b"EHLO" {
            return self.error(
                out,
                501,
                "5.5.4",
                &format!("Syntax: {} hostname", String::from_utf8_lossy(&verb)),
            );
        }
        self.error(out, code, status, &text)
    }

    fn hello(&mut self, host: &str, esmtp: bool, out: &mut Output) {
        self.end_transaction();
        self.helo = Some(host.to_string());
        self.esmtp = esmtp;
        let greeting = format!("{} greets {host}", self.policy.hostname);
        if !esmtp {
            out.reply(250, "", &greeting);
            return;
        }
        let mut lines = vec![
            greeting,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.policy.max_message_size),
            "8BITMIME".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "SMTPUTF8".to_string(),
            "CHUNKING".to_string(),
            "DSN".to_string(),
        ];
        if self.policy.tls_available && self.tls.is_none() {
            lines.push("STARTTLS".to_string());
        }
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            let separator = if i == last { ' ' } else { '-' };
            out.replies
                .extend_from_slice(format!("250{separator}{line}\r\n").as_bytes());
        }
    }

    fn starttls(&mut self, out: &mut Output) -> Action {
        if self.tls.is_some() {
            return self.error(out, 503, "5.5.1", "TLS already active");
        }
        if !self.policy.tls_available {
            return self.error(out, 454, "4.7.0", "TLS not available");
        }
        if self.helo.is_none() {
            return self.error(out, 503, "5.5.1", "Send EHLO first");
        }
        out.reply(220, "2.0.0", "Ready to start TLS");
        self.end_transaction();
        self.phase = Phase::Waiting;
        Action::StartTls
    }

    fn require_tls(&self) -> bool {
        self.tls.is_none()
            && self
                .connector
                .is_some_and(|i| self.policy.connectors[i].require_tls)
    }

    fn mail(
        &mut self,
        from: smtp_proto::MailFrom<std::borrow::Cow<'_, str>>,
        literal: Option<&str>,
        out: &mut Output,
    ) -> Action {
        if self.helo.is_none() {
            return self.error(out, 503, "5.5.1", "Send HELO/EHLO first");
        }
        if self.require_tls() {
            return self.error(out, 530, "5.7.0", "Must issue a STARTTLS command first");
        }
        if self.envelope.is_some() {
            return self.error(out, 503, "5.5.1", "Nested MAIL command");
        }
        if from.size as u64 > self.policy.max_message_size {
            out.reply(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            );
            return Action::None;
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            return self.error(out, 555, "5.5.4", "BODY=BINARYMIME is not supported");
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if !from.address.is_ascii() && !smtputf8 {
            return self.error(out, 553, "5.6.7", "Non-ASCII sender address needs SMTPUTF8");
        }
        let Some(address) = with_literal(&from.address, literal) else {
            return self.error(out, 501, "5.1.7", "Bad sender address syntax");
        };
        let domain = match super::policy::sender_domain(&address) {
            Ok(domain) => domain,
            Err(e) => {
                let (code, text) = domain_refusal(&e, "sender");
                return self.error(out, code, "5.1.7", &text);
            }
        };
        // Decided on the canonical domain: `bücher.test`, `BÜCHER.test.`
        // and `xn--bcher-kva.test` are one sender domain.
        if !self.policy.sender_allowed(domain.as_ref(), self.connector) {
            out.reply(
                550,
                "5.7.1",
                "Sender domain not permitted through this connection",
            );
            return Action::None;
        }
        let ret = if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
            Some(Ret::Full)
        } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
            Some(Ret::Hdrs)
        } else {
            None
        };
        self.envelope = Some(Envelope {
            sender: address,
            eight_bit: from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
            smtputf8,
            ret,
            envid: from.env_id.map(|e| e.to_string()),
            client: self.client_info(),
            ..Envelope::default()
        });
        out.reply(250, "2.1.0", "Ok");
        Action::None
    }

    fn rcpt(
        &mut self,
        line: &[u8],
        to: smtp_proto::RcptTo<std::borrow::Cow<'_, str>>,
        literal: Option<&str>,
        out: &mut Output,
    ) -> Action {
        let Some(envelope) = &self.envelope else {
            return self.error(out, 503, "5.5.1", "Need MAIL before RCPT");
        };
        if envelope.recipients.len() >= self.policy.max_recipients {
            out.reply(452, "4.5.3", "Too many recipients");
            return Action::None;
        }
        let smtputf8 = envelope.smtputf8;
        // smtp-proto gives "" for both <Postmaster> and <>: tell them apart.
        let address = match to.address.as_ref() {
            "" if is_null_path(line) => {
                return self.error(out, 501, "5.1.3", "Bad recipient address syntax")
            }
            "" => match self.policy.postmaster() {
                Some(postmaster) => postmaster,
                None => {
                    out.reply(
                        550,
                        "5.1.1",
                        "No postmaster here; write to postmaster@ a domain",
                    );
                    return Action::None;
                }
            },
            address => match with_literal(address, literal) {
                Some(address) => address,
                None => return self.error(out, 501, "5.1.3", "Bad recipient address syntax"),
            },
        };
        if !address.is_ascii() && !smtputf8 {
            return self.error(
                out,
                553,
                "5.6.7",
                "Non-ASCII recipient address needs SMTPUTF8",
            );
        }
        match self.policy.recipient(&address, self.connector) {
            RecipientVerdict::Accept => {}
            RecipientVerdict::BadDomain(e) => {
                let (code, text) = domain_refusal(&e, "recipient");
                return self.error(out, code, "5.1.3", &text);
            }
            // Counted like any refused command (as Postfix's error limits
            // do), so a client cannot probe for relay holes without end.
            RecipientVerdict::RelayTrick | RecipientVerdict::RelayDenied => {
                return self.error(out, 550, "5.7.1", "Relaying denied");
            }
        }
        let notify = (to.flags & 0b1111 != 0).then_some(Notify {
            success: to.flags & smtp_proto::RCPT_NOTIFY_SUCCESS != 0,
            failure: to.flags & smtp_proto::RCPT_NOTIFY_FAILURE != 0,
            delay: to.flags & smtp_proto::RCPT_NOTIFY_DELAY != 0,
        });
        let recipient = Recipient {
            address,
            orcpt: to.orcpt.map(|o| o.to_string()),
            notify,
        };
        if let Some(envelope) = &mut self.envelope {
            if !envelope
                .recipients
                .iter()
                .any(|r| super::policy::same_mailbox(&r.address, &recipient.address))
            {
                envelope.recipients.push(recipient);
            }
        }
        out.reply(250, "2.1.5", "Ok");
        Action::None
    }

    /// The reply for DATA/BDAT without a usable transaction, if any.
    fn transaction_problem(&self) -> Option<(u16, &'static str, &'static str)> {
        match &self.envelope {
            None => Some((503, "5.5.1", "Need MAIL command")),
            Some(e) if e.recipients.is_empty() => Some((554, "5.5.1", "No valid recipients")),
            Some(_) => None,
        }
    }

    fn data(&mut self, out: &mut Output) -> Action {
        if self.content.is_some() {
            return self.error(out, 503, "5.5.1", "DATA after BDAT");
        }
        if let Some((code, status, text)) = self.transaction_problem() {
            return self.error(out, code, status, text);
        }
        self.phase = Phase::Waiting;
        Action::OpenMessage
    }

    fn bdat(&mut self, size: usize, last: bool, out: &mut Output) -> Action {
        let first = self.content.is_none();
        let size = size as u64;
        if let Some((code, status, text)) = self.transaction_problem() {
            // RFC 3030 §2: the chunk is read and dropped all the same.
            self.content = None;
            self.phase = Phase::Bdat {
                chunk: BdatReceiver::discard(size),
                last: false,
                size,
                refused: Some((code, status, text)),
            };
            return self.finish_empty_chunk(size, out);
        }
        self.phase = Phase::Bdat {
            chunk: BdatReceiver::new(size, self.policy.bare_lf),
            last,
            size,
            refused: None,
        };
        if first {
            self.content = Some(Content::new(self.policy.max_message_size));
            return Action::OpenMessage;
        }
        self.finish_empty_chunk(size, out)
    }

    /// `BDAT 0 …` has nothing to read: complete it at once.
    fn finish_empty_chunk(&mut self, size: u64, out: &mut Output) -> Action {
        match size {
            0 => self.bdat_chunk_done(out),
            _ => Action::None,
        }
    }
}

/// The parsed address, with the masked address literal put back.
fn with_literal(address: &str, masked: Option<&str>) -> Option<String> {
    match masked {
        Some(masked) => literal::restore(address, masked),
        None => Some(address.to_string()),
    }
}

/// The reply code and text for an address whose domain is refused; the
/// caller adds the enhanced code (5.1.7 for a sender, 5.1.3 for a
/// recipient, RFC 3463 "bad mailbox address syntax").
///
/// * 501 (RFC 5321 §4.2.2, syntax error in the argument) when what
///   follows the `@` is neither a `Domain` (§4.1.2) nor an
///   `address-literal` (§4.1.3). A dotted quad without brackets is one
///   of those: the text says how to write it.
/// * 553 ("mailbox name not allowed") when it is written as an
///   internationalised domain (U-labels under SMTPUTF8, or `xn--` labels)
///   that has no IDNA 2008 A-label form under UTS #46: the grammar's
///   U-label is defined by IDNA itself, so the text is not malformed
///   SMTP; the name is refused because no such name can exist in DNS,
///   and no routing or sender-restriction decision can be made on it.
///   Like the 553 5.6.7 for a non-ASCII address without SMTPUTF8.
fn domain_refusal(error: &DomainError, role: &str) -> (u16, String) {
    match error {
        DomainError::Syntax { .. } => (501, format!("Bad {role} address syntax")),
        DomainError::BareAddress { text } => (
            501,
            format!("Bad {role} address syntax: an IP address is written as an address literal, [{text}]"),
        ),
        DomainError::Literal { why, .. } => (501, format!("Bad address literal: {why}")),
        DomainError::Unmappable { .. } => (
            553,
            format!("The {role} domain has no IDNA 2008 A-label form (UTS #46)"),
        ),
    }
}

const BDAT_SYNTAX: &str = "Syntax: BDAT chunk-size [LAST]";

/// RFC 3030 §2: `"BDAT" SP chunk-size [ SP end-marker ] CRLF`, where
/// `chunk-size = 1*DIGIT` and `end-marker = "LAST"`. smtp-proto skips
/// whatever follows `LAST` (`BDAT 5 LAST junk`); we refuse it, as Postfix
/// does (`501 5.5.4`, several blanks allowed like Postfix), and a size
/// that smtp-proto read otherwise than written (one past `u64`, which it
/// wraps). The chunk of a refused BDAT is not read: its size is not
/// trusted, so its bytes come as commands, as in Postfix.
fn bdat_syntax_ok(line: &[u8], parsed: usize) -> bool {
    let mut words = line
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty());
    let (Some(_verb), Some(size)) = (words.next(), words.next()) else {
        return false;
    };
    let size_ok = size.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(size)
            .ok()
            .and_then(|digits| digits.parse::<u64>().ok())
            == Some(parsed as u64);
    match (words.next(), words.next()) {
        (None, _) => size_ok,
        (Some(last), None) => size_ok && last.eq_ignore_ascii_case(b"LAST"),
        _ => false,
    }
}

/// True when a RCPT line's path is the null path `<>`.
fn is_null_path(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line);
    text.split_once(':')
        .is_some_and(|(_, path)| path.trim_start().starts_with("<>"))
}
