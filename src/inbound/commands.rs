//! SMTP commands (RFC 5321 §4.1) as the session answers them. Parsing is
//! smtp-proto's; the rules are ours.

use smtp_proto::{Error as ParseError, Request};

use super::policy::RecipientVerdict;
use super::session::{Action, Output, Phase, Session};
use crate::config::domain::DomainError;
use crate::queue::envelope::{Envelope, Notify, Recipient, Ret};
use crate::smtp::literal;
use crate::smtp::replies::{self, EhloTls, Role, ServerReply};

impl Session {
    /// Answers one complete command line (ending in LF).
    pub(super) fn command(&mut self, line: &[u8], out: &mut Output) -> Action {
        let sender = self.envelope.as_ref().map(|e| e.sender.as_str());
        out.context = super::session::Context::of_line(line, sender);
        if self.shutting_down {
            self.closing(out, &replies::SHUTTING_DOWN);
            self.phase = Phase::Waiting;
            return Action::Close;
        }
        if line.contains(&0) {
            return self.error(out, &replies::NUL_IN_COMMAND);
        }
        // smtp-proto reads arguments lossily: invalid UTF-8 would reach
        // the envelope, the greeting and the Received header as U+FFFD.
        // RFC 6531 §3.3 allows only well-formed UTF-8, and only with SMTPUTF8.
        if std::str::from_utf8(line).is_err() {
            return self.error(out, &replies::INVALID_UTF8);
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
            Request::Bdat {
                chunk_size,
                is_last,
            } => {
                if !super::content::bdat_syntax_ok(line, chunk_size) {
                    return self.error(out, &replies::BDAT_SYNTAX);
                }
                return self.bdat(chunk_size, is_last, out);
            }
            Request::Rset => {
                let open = self.queue_id.is_some();
                self.end_transaction();
                out.reply(&replies::OK);
                if open {
                    return Action::Abort;
                }
            }
            Request::Noop { .. } => out.reply(&replies::OK),
            Request::Vrfy { .. } => out.reply(&replies::CANNOT_VRFY),
            Request::Help { .. } => out.reply(&replies::HELP),
            Request::Quit => {
                out.reply(&replies::BYE);
                self.phase = Phase::Waiting;
                return Action::Close;
            }
            Request::Lhlo { .. }
            | Request::Auth { .. }
            | Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                return self.error(out, &replies::NOT_IMPLEMENTED);
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
        let reply = match error {
            ParseError::UnknownCommand => replies::UNRECOGNIZED,
            ParseError::InvalidSenderAddress => Role::Sender.bad_syntax(),
            ParseError::InvalidRecipientAddress => Role::Recipient.bad_syntax(),
            ParseError::SyntaxError { syntax } => replies::syntax(syntax),
            ParseError::InvalidParameter { param } => replies::invalid_parameter(param),
            ParseError::UnsupportedParameter { param } => replies::unsupported_parameter(&param),
            ParseError::ResponseTooLong => replies::LINE_TOO_LONG,
            ParseError::NeedsMoreData { .. } | ParseError::InvalidResponse { .. } => {
                replies::SYNTAX_ERROR
            }
        };
        if verb == b"HELO" || verb == b"EHLO" {
            let usage = format!("{} hostname", String::from_utf8_lossy(&verb));
            return self.error(out, &replies::syntax(&usage));
        }
        self.error(out, &reply)
    }

    fn hello(&mut self, host: &str, esmtp: bool, out: &mut Output) {
        self.end_transaction();
        self.helo = Some(host.to_string());
        self.esmtp = esmtp;
        if !esmtp {
            out.reply(&replies::helo(&self.policy.hostname, host));
            return;
        }
        let tls = match (&self.tls, self.policy.tls_available) {
            (Some(_), _) => EhloTls::Active,
            (None, true) => EhloTls::Available,
            (None, false) => EhloTls::Unavailable,
        };
        let ehlo = replies::ehlo(
            &self.policy.hostname,
            host,
            self.policy.max_message_size,
            tls,
        );
        out.replies.extend_from_slice(ehlo.as_bytes());
    }

    fn starttls(&mut self, out: &mut Output) -> Action {
        if self.tls.is_some() {
            return self.error(out, &replies::TLS_ALREADY_ACTIVE);
        }
        if !self.policy.tls_available {
            return self.error(out, &replies::TLS_NOT_AVAILABLE);
        }
        if self.helo.is_none() {
            return self.error(out, &replies::EHLO_FIRST);
        }
        out.reply(&replies::READY_FOR_TLS);
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
            return self.error(out, &replies::HELO_FIRST);
        }
        if self.require_tls() {
            return self.error(out, &replies::STARTTLS_FIRST);
        }
        if self.envelope.is_some() {
            return self.error(out, &replies::NESTED_MAIL);
        }
        // Delivery is too far behind: no new transaction for now. Not the
        // client's error, so not counted towards `max_errors`; the
        // session goes on, and a later MAIL may be taken.
        if self.policy.flow.refuses_mail() {
            crate::metrics::flow_refused();
            out.reply(&replies::BACKLOG);
            return Action::None;
        }
        if from.size as u64 > self.policy.max_message_size {
            out.reply(&replies::TOO_LARGE);
            return Action::None;
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            return self.error(out, &replies::BINARYMIME);
        }
        // RFC 8689 §4.1: the option exists only on a TLS session; a client
        // that asks for it in plaintext (a stripped STARTTLS, say) must
        // not have its message taken as if the hop were protected.
        let requiretls = from.flags & smtp_proto::MAIL_REQUIRETLS != 0;
        if requiretls && self.tls.is_none() {
            return self.error(out, &replies::REQUIRETLS_NEEDS_TLS);
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if !from.address.is_ascii() && !smtputf8 {
            return self.error(out, &Role::Sender.needs_smtputf8());
        }
        let Some(address) = with_literal(&from.address, literal) else {
            return self.error(out, &Role::Sender.bad_syntax());
        };
        let domain = match super::policy::sender_domain(&address) {
            Ok(domain) => domain,
            Err(e) => return self.error(out, &domain_refusal(&e, Role::Sender)),
        };
        // Decided on the canonical domain: `bücher.test`, `BÜCHER.test.`
        // and `xn--bcher-kva.test` are one sender domain.
        if !self.policy.sender_allowed(domain.as_ref(), self.connector) {
            out.reply(&replies::SENDER_NOT_PERMITTED);
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
            requiretls,
            client: self.client_info(),
            ..Envelope::default()
        });
        out.reply(&replies::SENDER_OK);
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
            return self.error(out, &replies::MAIL_BEFORE_RCPT);
        };
        if envelope.recipients.len() >= self.policy.max_recipients {
            out.reply(&replies::TOO_MANY_RECIPIENTS);
            return Action::None;
        }
        let smtputf8 = envelope.smtputf8;
        // smtp-proto gives "" for both <Postmaster> and <>: tell them apart.
        let address = match to.address.as_ref() {
            "" if is_null_path(line) => return self.error(out, &Role::Recipient.bad_syntax()),
            "" => match self.policy.postmaster() {
                Some(postmaster) => postmaster,
                None => {
                    out.reply(&replies::NO_POSTMASTER);
                    return Action::None;
                }
            },
            address => match with_literal(address, literal) {
                Some(address) => address,
                None => return self.error(out, &Role::Recipient.bad_syntax()),
            },
        };
        if !address.is_ascii() && !smtputf8 {
            return self.error(out, &Role::Recipient.needs_smtputf8());
        }
        match self.policy.recipient(&address, self.connector) {
            RecipientVerdict::Accept => {}
            RecipientVerdict::BadDomain(e) => {
                return self.error(out, &domain_refusal(&e, Role::Recipient));
            }
            // Counted like any refused command (as Postfix's error limits
            // do), so a client cannot probe for relay holes without end.
            RecipientVerdict::RelayTrick | RecipientVerdict::RelayDenied => {
                return self.error(out, &replies::RELAYING_DENIED);
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
        out.reply(&replies::RECIPIENT_OK);
        Action::None
    }
}

/// The parsed address, with the masked address literal put back.
fn with_literal(address: &str, masked: Option<&str>) -> Option<String> {
    match masked {
        Some(masked) => literal::restore(address, masked),
        None => Some(address.to_string()),
    }
}

/// The reply for an address whose domain is refused, with the enhanced
/// code of its role (5.1.7 for a sender, 5.1.3 for a recipient, RFC 3463
/// "bad mailbox address syntax").
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
fn domain_refusal(error: &DomainError, role: Role) -> ServerReply {
    match error {
        DomainError::Syntax { .. } => role.bad_syntax(),
        DomainError::BareAddress { text } => role.bad_address(format!(
            "{}: an IP address is written as an address literal, [{text}]",
            role.bad_syntax().text
        )),
        DomainError::Literal { why, .. } => role.bad_address(format!("Bad address literal: {why}")),
        DomainError::Unmappable { .. } => role.unmappable_domain(),
    }
}

/// True when a RCPT line's path is the null path `<>`.
fn is_null_path(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line);
    text.split_once(':')
        .is_some_and(|(_, path)| path.trim_start().starts_with("<>"))
}
