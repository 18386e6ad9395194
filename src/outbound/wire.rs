//! The words of an SMTP exchange as the client uses them: the phases and
//! their deadlines, why a conversation broke off, what EHLO offered, a
//! transaction's replies, and addresses and xtext as written on the wire.

use std::fmt;
use std::io;
use std::time::Duration;

use smtp_proto::{
    EXT_8BIT_MIME, EXT_CHUNKING, EXT_DSN, EXT_PIPELINING, EXT_REQUIRE_TLS, EXT_SIZE, EXT_SMTP_UTF8,
    EXT_START_TLS,
};

use crate::queue::envelope::{Envelope, Recipient, Ret};
use crate::smtp::reply::{Reply, ReplyError};

/// The steps of a delivery, each with its own deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Greeting,
    Ehlo,
    StartTls,
    Mail,
    Rcpt,
    Data,
    /// Sending the message content, after `354`.
    Content,
    DataEnd,
    Rset,
    Quit,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Greeting => "greeting",
            Phase::Ehlo => "EHLO",
            Phase::StartTls => "STARTTLS",
            Phase::Mail => "MAIL FROM",
            Phase::Rcpt => "RCPT TO",
            Phase::Data => "DATA",
            Phase::Content => "message content",
            Phase::DataEnd => "end of data",
            Phase::Rset => "RSET",
            Phase::Quit => "QUIT",
        })
    }
}

impl Phase {
    /// RFC 5321 §4.5.3.2: 5 minutes for the greeting, MAIL and RCPT,
    /// 2 for DATA, 3 for each send of content (the "DATA block"), 10 for
    /// the reply after the end of data.
    pub fn timeout(self) -> Duration {
        Duration::from_secs(match self {
            Phase::Data => 120,
            Phase::Content => 180,
            Phase::DataEnd => 600,
            Phase::Rset | Phase::Quit | Phase::StartTls | Phase::Ehlo => 120,
            Phase::Greeting | Phase::Mail | Phase::Rcpt => 300,
        })
    }
}

/// Why a conversation broke off; every one of these is temporary.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no reply to {0} in time")]
    Timeout(Phase),
    /// A write did not complete within the phase's deadline: the server
    /// stopped reading.
    #[error("the server stopped reading during {0}: nothing could be sent in time")]
    Stalled(Phase),
    #[error("connection lost during {0}: {reason}", reason = crate::tls::reason::io_reason(.1))]
    Io(Phase, io::Error),
    #[error("connection closed by the server during {0}")]
    Closed(Phase),
    #[error("protocol error during {0}: {1}")]
    Protocol(Phase, String),
    /// Our side: the message could not be read from the spool while it
    /// was being sent; the data was not ended, so nothing was delivered.
    #[error("the message could not be read from the spool while sending it: {0}")]
    Content(io::Error),
}

impl ClientError {
    /// The phase the conversation was in.
    pub fn phase(&self) -> Phase {
        match self {
            ClientError::Timeout(phase)
            | ClientError::Stalled(phase)
            | ClientError::Io(phase, _)
            | ClientError::Closed(phase)
            | ClientError::Protocol(phase, _) => *phase,
            ClientError::Content(_) => Phase::Content,
        }
    }
}

/// What the server's EHLO reply offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub esmtp: bool,
    pub starttls: bool,
    pub pipelining: bool,
    pub size: Option<u64>,
    pub eight_bit: bool,
    pub smtputf8: bool,
    pub chunking: bool,
    pub dsn: bool,
    /// RFC 8689: the server takes on a flagged message's obligation.
    pub requiretls: bool,
}

impl Capabilities {
    /// What a positive EHLO reply offers (RFC 5321 §4.1.1.1); pure, so
    /// that it is fuzzed without a connection.
    pub fn from_ehlo(reply: &Reply) -> Result<Capabilities, ReplyError> {
        let ehlo = reply.ehlo()?;
        let has = |flag: u32| ehlo.capabilities & flag != 0;
        Ok(Capabilities {
            esmtp: true,
            starttls: has(EXT_START_TLS),
            pipelining: has(EXT_PIPELINING),
            size: (has(EXT_SIZE) && ehlo.size > 0).then_some(ehlo.size as u64),
            eight_bit: has(EXT_8BIT_MIME),
            smtputf8: has(EXT_SMTP_UTF8),
            chunking: has(EXT_CHUNKING),
            dsn: has(EXT_DSN),
            requiretls: has(EXT_REQUIRE_TLS),
        })
    }
}

/// The replies of one mail transaction.
#[derive(Clone, Debug)]
pub struct Transaction {
    pub mail: Reply,
    /// One reply per recipient, in the order given.
    pub rcpts: Vec<Reply>,
    /// The reply after the content, or the refusal of DATA itself; `None`
    /// when no recipient was accepted (or MAIL was refused) so DATA was
    /// not needed.
    pub data: Option<Reply>,
}

/// An address as a path: the local part quoted when it needs it (RFC 5321
/// §4.1.2), since the parser handed it to us unquoted. Public for the
/// address fuzz target, which checks that it parses back to the address.
pub fn path(address: &str) -> String {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return address.to_string();
    };
    let atom =
        |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii();
    let dot_string = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c == '.' || atom(c));
    if dot_string {
        return address.to_string();
    }
    let quoted: String = local
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("\"{quoted}\"@{domain}")
}

/// RFC 3461 §4 xtext: `+`, `=`, controls and non-ASCII as `+XX`.
pub(super) fn xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (b'!'..=b'~').contains(&byte) && byte != b'+' && byte != b'=' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("+{byte:02X}"));
        }
    }
    out
}

/// `MAIL FROM` with the parameters the server's EHLO allows.
pub(super) fn mail_command(caps: &Capabilities, envelope: &Envelope, size: u64) -> String {
    let mut line = format!("MAIL FROM:<{}>", path(&envelope.sender));
    if caps.size.is_some() {
        line.push_str(&format!(" SIZE={size}"));
    }
    if envelope.eight_bit && caps.eight_bit {
        line.push_str(" BODY=8BITMIME");
    }
    if envelope.smtputf8 && caps.smtputf8 {
        line.push_str(" SMTPUTF8");
    }
    // RFC 8689 §4.2.1 step 4; a hop that does not offer it never gets a
    // message whose connector enforces it (`super::requiretls`).
    if envelope.requiretls && caps.requiretls {
        line.push_str(" REQUIRETLS");
    }
    if caps.dsn {
        match envelope.ret {
            Some(Ret::Full) => line.push_str(" RET=FULL"),
            Some(Ret::Hdrs) => line.push_str(" RET=HDRS"),
            None => {}
        }
        if let Some(envid) = &envelope.envid {
            line.push_str(&format!(" ENVID={}", xtext(envid)));
        }
    }
    line.push_str("\r\n");
    line
}

/// `RCPT TO` with the DSN parameters, when the server offers DSN.
pub(super) fn rcpt_command(caps: &Capabilities, recipient: &Recipient) -> String {
    let mut line = format!("RCPT TO:<{}>", path(&recipient.address));
    if caps.dsn {
        if let Some(notify) = recipient.notify {
            line.push_str(&format!(" NOTIFY={notify}"));
        }
        if let Some(orcpt) = &recipient.orcpt {
            line.push_str(&format!(" ORCPT=rfc822;{}", xtext(orcpt)));
        }
    }
    line.push_str("\r\n");
    line
}
