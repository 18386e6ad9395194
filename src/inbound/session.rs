//! The inbound SMTP session as a pure state machine: bytes in, replies,
//! content and one [`Action`] out. No sockets, no clock, no disk: the
//! connection driver does those and reports back (`message_opened`,
//! `committed`, `tls_established`), so every rule here is unit-tested.

use std::net::IpAddr;
use std::sync::Arc;

use super::policy::InboundPolicy;
use crate::queue::envelope::{ClientInfo, Envelope};
use crate::smtp::data::{BdatReceiver, Content, DataReceiver};
use crate::smtp::replies::{self, ServerReply};
use crate::tls::server::{ClientCert, TlsInfo};

pub use super::output::{Context, Output, Refusal};

/// Longest command line we read, CRLF included. RFC 5321 §4.5.3.1.4 sets
/// 512 octets plus what extensions add (ORCPT, ENVID); beyond this the
/// line is discarded and answered `500 5.5.2`.
pub const MAX_COMMAND_LINE: usize = 1024;

/// What the driver must do after a [`Session::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send the replies, read more.
    None,
    /// Send the replies, then the TLS handshake. Every byte read so far is
    /// discarded (RFC 3207 §4.2, CVE-2011-0411).
    StartTls,
    /// A transaction reached DATA or its first BDAT: open a spool file for
    /// [`Session::envelope`], then call [`Session::message_opened`].
    OpenMessage,
    /// The content is complete: make it durable, then call [`Session::committed`].
    Commit,
    /// Drop the open spool file: the message will not be accepted.
    Abort,
    /// Send the replies and close the connection.
    Close,
}

#[derive(Debug)]
pub(super) enum Phase {
    Command,
    /// Discarding an over-long command line up to its LF.
    LongLine,
    Data(DataReceiver),
    /// Reading a BDAT chunk of `size` bytes; `refused` holds the reply
    /// when the chunk is read only to be dropped (RFC 3030 §2).
    Bdat {
        chunk: BdatReceiver,
        last: bool,
        size: u64,
        refused: Option<ServerReply>,
    },
    /// Waiting for the driver (open, commit, handshake, close).
    Waiting,
}

/// One client connection's SMTP state.
#[derive(Debug)]
pub struct Session {
    pub(super) policy: Arc<InboundPolicy>,
    pub(super) ip: IpAddr,
    pub(super) reverse_name: Option<String>,
    pub(super) phase: Phase,
    pub(super) helo: Option<String>,
    pub(super) esmtp: bool,
    pub(super) tls: Option<TlsInfo>,
    pub(super) connector: Option<usize>,
    /// The current transaction: set by MAIL, cleared by RSET/EHLO/end.
    pub(super) envelope: Option<Envelope>,
    /// Content accounting for the open message (DATA or BDAT chunks).
    pub(super) content: Option<Content>,
    /// The queue id of the open message.
    pub(super) queue_id: Option<String>,
    pub(super) errors: u32,
    pub(super) shutting_down: bool,
}

impl Session {
    pub fn new(policy: Arc<InboundPolicy>, ip: IpAddr, reverse_name: Option<String>) -> Self {
        let connector = policy.match_connector(ip, &[]);
        Session {
            policy,
            ip,
            reverse_name,
            phase: Phase::Command,
            helo: None,
            esmtp: false,
            tls: None,
            connector,
            envelope: None,
            content: None,
            queue_id: None,
            errors: 0,
            shutting_down: false,
        }
    }

    /// The client's reverse DNS name, for the Received header.
    pub fn set_reverse_name(&mut self, name: String) {
        self.reverse_name = Some(name);
    }

    /// The client's reverse DNS name, once known.
    pub fn reverse_name(&self) -> Option<&str> {
        self.reverse_name.as_deref()
    }

    /// The TLS session's version and cipher, `None` in plaintext.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// The size of the message content received so far.
    pub fn content_size(&self) -> Option<u64> {
        self.content.as_ref().map(Content::size)
    }

    /// The open message's `Message-ID`, once its header section is read.
    pub fn message_id(&self) -> Option<String> {
        self.content.as_ref().and_then(Content::message_id)
    }

    /// The `220` banner.
    pub fn greeting(&self, out: &mut Output) {
        out.reply(&replies::greeting(&self.policy.hostname));
    }

    /// The transaction being received, for the spool.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.envelope.as_ref()
    }

    /// The matched inbound connector's name.
    pub fn connector_name(&self) -> Option<&str> {
        self.connector
            .map(|i| self.policy.connectors[i].name.as_str())
    }

    /// The TLS version of the session, `None` in plaintext.
    pub fn tls_version(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.version.as_str())
    }

    /// True while message content is being received (for timeouts).
    pub fn in_data(&self) -> bool {
        matches!(self.phase, Phase::Data(_) | Phase::Bdat { .. })
    }

    /// True at the start of a command line: input consumed to get here
    /// was whole lines, so the command deadline starts again. Not while an
    /// over-long line is being discarded, or a client could drip one
    /// forever (RFC 5321 §4.5.3.2 counts from the last command).
    pub fn awaiting_command(&self) -> bool {
        matches!(self.phase, Phase::Command)
    }

    /// Consumes input until it is used up or an action is needed. Returns
    /// the number of bytes consumed and the action.
    pub fn feed(&mut self, input: &[u8], out: &mut Output) -> (usize, Action) {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            let (n, action) = match &mut self.phase {
                Phase::Command => self.command_input(rest, out),
                Phase::LongLine => self.skip_long_line(rest, out),
                Phase::Data(_) => self.data_input(rest, out),
                Phase::Bdat { .. } => self.bdat_input(rest, out),
                Phase::Waiting => (0, Action::None),
            };
            used += n;
            if action != Action::None {
                if action == Action::StartTls {
                    // Nothing pipelined after STARTTLS may survive the upgrade.
                    used = input.len();
                }
                return (used, action);
            }
            if n == 0 {
                break;
            }
        }
        (used, Action::None)
    }

    fn command_input(&mut self, input: &[u8], out: &mut Output) -> (usize, Action) {
        let Some(end) = input.iter().position(|&b| b == b'\n') else {
            if input.len() >= MAX_COMMAND_LINE {
                self.phase = Phase::LongLine;
                return (input.len(), Action::None);
            }
            return (0, Action::None);
        };
        if end + 1 > MAX_COMMAND_LINE {
            let action = self.error(out, &replies::LINE_TOO_LONG);
            return (end + 1, action);
        }
        let line = &input[..=end];
        (end + 1, self.command(line, out))
    }

    fn skip_long_line(&mut self, input: &[u8], out: &mut Output) -> (usize, Action) {
        match input.iter().position(|&b| b == b'\n') {
            Some(end) => {
                self.phase = Phase::Command;
                (end + 1, self.error(out, &replies::LINE_TOO_LONG))
            }
            None => (input.len(), Action::None),
        }
    }

    /// The handshake finished: forget everything (RFC 3207 §4.2), match
    /// the connector again, now also by client certificate.
    pub fn tls_established(&mut self, info: TlsInfo) {
        let names = match &info.client_cert {
            ClientCert::Verified { names, .. } => names.clone(),
            _ => Vec::new(),
        };
        self.connector = self.policy.match_connector(self.ip, &names);
        self.tls = Some(info);
        self.helo = None;
        self.esmtp = false;
        self.end_transaction();
    }

    /// From now on every command is answered `421 4.3.2`.
    pub fn shut_down(&mut self) {
        self.shutting_down = true;
    }

    /// The driver's deadline passed.
    pub fn timed_out(&mut self, out: &mut Output) {
        self.closing(out, &replies::TIMEOUT);
        self.phase = Phase::Waiting;
    }

    /// A `421` reply: the session ends. RFC 5321 §3.8 and §4.2 put our
    /// host name first in its text (`421 4.x.x relay.example.test …`).
    pub fn closing(&self, out: &mut Output, reply: &ServerReply) {
        out.reply(&reply.from_host(&self.policy.hostname));
    }

    pub(super) fn end_transaction(&mut self) {
        self.envelope = None;
        self.content = None;
        self.queue_id = None;
        if !matches!(self.phase, Phase::LongLine) {
            self.phase = Phase::Command;
        }
    }

    /// Counts a client error; too many end the session.
    pub(super) fn error(&mut self, out: &mut Output, reply: &ServerReply) -> Action {
        self.errors += 1;
        if self.errors >= self.policy.max_errors {
            self.closing(out, &replies::TOO_MANY_ERRORS);
            self.phase = Phase::Waiting;
            return Action::Close;
        }
        out.reply(reply);
        Action::None
    }

    pub(super) fn client_info(&self) -> ClientInfo {
        ClientInfo {
            ip: self.ip,
            helo: self.helo.clone().unwrap_or_default(),
            connector: self.connector_name().map(str::to_string),
            tls: self
                .tls
                .as_ref()
                .map(|t| format!("{} {}", t.version, t.cipher)),
        }
    }
}

/// Why the driver could not make a message durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitError {
    /// The disk is full (`452 4.3.1`).
    NoSpace,
    /// Anything else (`451 4.3.0`).
    Failed,
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
