//! The inbound session driven in memory, the way `src/inbound/connection.rs`
//! drives it over a socket: input is buffered until the session consumes
//! it, and every action is answered (a spool file is "opened" and
//! "committed" in memory). No sockets, no disk, no clock.
//!
//! Shared by the property tests (`tests/properties.rs`) and the fuzz
//! targets (`fuzz/fuzz_targets/session.rs` includes this file by path), so
//! that both check the same driver.

use std::net::IpAddr;
use std::sync::Arc;

use tlsrelay::inbound::policy::InboundPolicy;
use tlsrelay::inbound::session::{Action, Output, Session};
use tlsrelay::queue::envelope::Envelope;

/// The date every Received header gets, so that runs compare equal.
pub const DATE: &str = "Sun, 22 Nov 2026 07:00:00 +0000";

/// Everything a session did, as a client and the spool would see it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    /// Every byte written to the client, greeting included.
    pub replies: Vec<u8>,
    /// Every action the session asked for, in order.
    pub actions: Vec<Action>,
    /// Committed messages: envelope and content, Received header included.
    pub queued: Vec<(Envelope, Vec<u8>)>,
    /// `Close` or `StartTls` once the session has asked for it: nothing
    /// after that is read (the TLS handshake is not part of this driver).
    pub ended: Option<Action>,
}

/// One connection's session with an in-memory driver.
pub struct MemoryConnection {
    session: Session,
    input: Vec<u8>,
    /// The open "spool file": the envelope at open time and content so far.
    message: Option<(Envelope, Vec<u8>)>,
    transcript: Transcript,
}

impl MemoryConnection {
    /// A new session from `ip`, greeted.
    pub fn new(policy: Arc<InboundPolicy>, ip: IpAddr) -> Self {
        let session = Session::new(policy, ip, None);
        let mut out = Output::default();
        session.greeting(&mut out);
        MemoryConnection {
            session,
            input: Vec::new(),
            message: None,
            transcript: Transcript {
                replies: out.replies,
                ..Transcript::default()
            },
        }
    }

    /// One read from the socket: `bytes` are appended to what the session
    /// has not consumed yet, and the session runs as far as it can.
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.transcript.ended.is_some() {
            return;
        }
        self.input.extend_from_slice(bytes);
        let mut out = Output::default();
        loop {
            let (used, action) = self.session.feed(&self.input, &mut out);
            assert!(used <= self.input.len(), "consumed more than it was given");
            self.input.drain(..used);
            self.store(&mut out);
            if !self.act(action, &mut out) {
                break;
            }
        }
        self.transcript.replies.append(&mut out.replies);
    }

    /// Feeds `input` in the pieces that `cuts` (increasing offsets) make.
    pub fn run(policy: Arc<InboundPolicy>, ip: IpAddr, input: &[u8], cuts: &[usize]) -> Transcript {
        let mut connection = MemoryConnection::new(policy, ip);
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&input.len())) {
            let end = end.clamp(start, input.len());
            connection.receive(&input[start..end]);
            start = end;
        }
        connection.finish()
    }

    /// The transcript so far.
    pub fn finish(self) -> Transcript {
        self.transcript
    }

    /// Content goes into the open message; there must be one.
    fn store(&mut self, out: &mut Output) {
        if out.content.is_empty() {
            return;
        }
        match &mut self.message {
            Some((_, content)) => content.append(&mut out.content),
            None => panic!("{} content bytes with no message open", out.content.len()),
        }
    }

    /// Answers one action as the connection driver does; false when the
    /// driver goes back to reading the socket.
    fn act(&mut self, action: Action, out: &mut Output) -> bool {
        if action != Action::None {
            self.transcript.actions.push(action);
        }
        match action {
            Action::None => false,
            Action::OpenMessage => {
                let envelope = self.session.envelope().cloned();
                assert!(envelope.is_some(), "OpenMessage without an envelope");
                assert!(self.message.is_none(), "OpenMessage with a message open");
                self.message = Some((envelope.unwrap_or_default(), Vec::new()));
                let id = format!("Q{}", self.transcript.queued.len() + 1);
                let next = self.session.message_opened(&id, DATE, out);
                self.store(out);
                // `BDAT 0 LAST` completes here with Commit; the driver acts
                // on whatever comes back, as src/inbound/connection.rs does.
                match next {
                    Action::None => true,
                    next => self.act(next, out),
                }
            }
            Action::Commit => {
                let message = self.message.take();
                assert!(message.is_some(), "Commit with no message open");
                self.transcript.queued.extend(message);
                self.session.committed(Ok(()), out);
                true
            }
            Action::Abort => {
                self.message = None;
                true
            }
            Action::StartTls | Action::Close => {
                self.transcript.ended = Some(action);
                false
            }
        }
    }
}
