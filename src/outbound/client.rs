//! The SMTP client (RFC 5321 §3–4) over any byte stream: plaintext TCP
//! before STARTTLS, TLS after. STARTTLS is a change of type: [`Client::starttls`]
//! gives the stream back with nothing buffered, and a new client is made
//! over the TLS stream, so no reply or capability from before the
//! handshake survives it (RFC 3207 §4.2, response injection).
//!
//! Every read and every write has the deadline of its phase (RFC 5321
//! §4.5.3.2) and an error names the phase: a server that stops reading
//! (a full socket buffer) is cut like one that stops answering.

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::wire::{mail_command, rcpt_command};
pub use super::wire::{path, Capabilities, ClientError, Phase, Transaction};
use crate::queue::body::Body;
use crate::queue::envelope::{Envelope, Recipient};
use crate::smtp::reply::{Reply, ReplyReader};
use crate::smtp::stuff::Stuffer;

/// What STARTTLS came to (RFC 3207 §4).
pub enum StartTls<S> {
    /// `220`: the stream, nothing buffered, for the handshake.
    Ready(S),
    /// Any other reply; the client is still usable in plaintext.
    Refused {
        reply: Reply,
        client: Box<Client<S>>,
    },
}

/// An SMTP conversation over `S`.
pub struct Client<S> {
    stream: S,
    reader: ReplyReader,
    /// Bytes read past the last reply (a pipelining server sends several).
    pending: Vec<u8>,
    pub capabilities: Capabilities,
    /// Multiplies every phase timeout (tests shorten them).
    pub timeout_scale: f64,
    /// A kept connection's RSET still to send, in front of the next
    /// transaction ([`ready_for_next`](Self::ready_for_next)).
    reset_first: bool,
    /// Whether the content may go by BDAT when the server offers
    /// CHUNKING (`[delivery] chunking`).
    pub chunking: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Self {
        Client {
            stream,
            reader: ReplyReader::new(),
            pending: Vec::new(),
            capabilities: Capabilities::default(),
            timeout_scale: 1.0,
            reset_first: false,
            chunking: true,
        }
    }

    /// The connection underneath.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Reads one reply within the phase's deadline.
    pub async fn reply(&mut self, phase: Phase) -> Result<Reply, ClientError> {
        let limit = phase.timeout().mul_f64(self.timeout_scale);
        match timeout(limit, self.read_reply(phase)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout(phase)),
        }
    }

    async fn read_reply(&mut self, phase: Phase) -> Result<Reply, ClientError> {
        loop {
            let mut input = &self.pending[..];
            let parsed = self
                .reader
                .read(&mut input)
                .map_err(|e| ClientError::Protocol(phase, e.to_string()))?;
            let used = self.pending.len() - input.len();
            self.pending.drain(..used);
            if let Some(reply) = parsed {
                return Ok(reply);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) => return Err(ClientError::Closed(phase)),
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(ClientError::Io(phase, e)),
            }
        }
    }

    async fn write(&mut self, bytes: &[u8], phase: Phase) -> Result<(), ClientError> {
        let limit = phase.timeout().mul_f64(self.timeout_scale);
        let work = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match timeout(limit, work).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ClientError::Io(phase, e)),
            Err(_) => Err(ClientError::Stalled(phase)),
        }
    }

    /// The content after `354`, dot-stuffed as it is read (a large
    /// message is never held whole), and the `.` line after it.
    /// Content that cannot be read is an error before the `.`: the
    /// caller drops the connection, and the server, never seeing the end
    /// of the data, takes nothing.
    async fn send_content(&mut self, content: &Body) -> Result<(), ClientError> {
        let mut stuffer = Stuffer::default();
        // Sized to the message when it is small: a fresh 144 KiB buffer
        // for a 2 KiB message cost an allocation the allocator trims
        // back (madvise) at every free, and the page faults after it.
        let read = usize::try_from(content.len()).map_or(CONTENT_READ, |len| len.min(CONTENT_READ));
        let mut wire = Vec::with_capacity(read + read / 8 + 8);
        let mut pieces = content.pieces(CONTENT_READ);
        loop {
            match pieces.next().await {
                Some(Ok(piece)) => stuffer.stuff(&piece, &mut wire),
                Some(Err(e)) => return Err(ClientError::Content(e)),
                None => break,
            }
            if wire.len() >= CONTENT_READ {
                self.send_wire(&wire).await?;
                wire.clear();
            }
        }
        stuffer.finish(&mut wire);
        self.send_wire(&wire).await
    }

    /// Content in wire form, in pieces that each have the DATA block
    /// deadline (RFC 5321 §4.5.3.2.5): a server that stops reading is cut
    /// within it whatever the message's size, and one that reads slowly
    /// but steadily is not.
    async fn send_wire(&mut self, wire: &[u8]) -> Result<(), ClientError> {
        for piece in wire.chunks(CONTENT_PIECE) {
            self.write(piece, Phase::Content).await?;
        }
        Ok(())
    }

    /// Sends one command line and reads its reply.
    pub async fn command(&mut self, line: &str, phase: Phase) -> Result<Reply, ClientError> {
        self.write(format!("{line}\r\n").as_bytes(), phase).await?;
        self.reply(phase).await
    }

    /// EHLO, falling back to HELO when the server does not know it
    /// (RFC 5321 §3.2). Records the capabilities offered.
    pub async fn hello(&mut self, name: &str) -> Result<Reply, ClientError> {
        let reply = self.command(&format!("EHLO {name}"), Phase::Ehlo).await?;
        if reply.is_positive() {
            self.capabilities = Capabilities::from_ehlo(&reply)
                .map_err(|e| ClientError::Protocol(Phase::Ehlo, e.to_string()))?;
            return Ok(reply);
        }
        if !(500..=504).contains(&reply.code) {
            return Ok(reply);
        }
        self.capabilities = Capabilities::default();
        self.command(&format!("HELO {name}"), Phase::Ehlo).await
    }

    /// Sends STARTTLS; on `220` returns the stream for the handshake, with
    /// whatever the server sent after its `220` thrown away. Any other
    /// reply comes back with the client, still in plaintext.
    pub async fn starttls(mut self) -> Result<StartTls<S>, ClientError> {
        let reply = self.command("STARTTLS", Phase::StartTls).await?;
        if reply.code != 220 {
            return Ok(StartTls::Refused {
                reply,
                client: Box::new(self),
            });
        }
        // Injected lines after the 220 must not be read as TLS-protected.
        self.pending.clear();
        Ok(StartTls::Ready(self.stream))
    }

    /// One mail transaction: MAIL, the RCPTs, and the content if any
    /// recipient was accepted. Pipelined when the server offers it
    /// (RFC 2920); the content by BDAT when it offers CHUNKING (RFC 3030,
    /// [`chunked`](Self::chunked)), by DATA otherwise. `content` is the
    /// message as spooled (not dot-stuffed), read as it is sent.
    pub async fn transaction(
        &mut self,
        envelope: &Envelope,
        recipients: &[&Recipient],
        content: &Body,
    ) -> Result<Transaction, ClientError> {
        let caps = &self.capabilities;
        let mail = mail_command(caps, envelope, content.len());
        let rcpts: Vec<String> = recipients.iter().map(|r| rcpt_command(caps, r)).collect();
        let reset = std::mem::take(&mut self.reset_first);
        if reset && !self.capabilities.pipelining {
            let reply = self.reset().await?;
            Self::reset_accepted(&reply)?;
        }
        if self.chunking && self.capabilities.chunking {
            return self.chunked(&mail, &rcpts, reset, content).await;
        }
        let (mail_reply, rcpt_replies, data_reply) = match self.capabilities.pipelining {
            true => {
                let (mail, rcpts) = self
                    .pipelined(&mail, &rcpts, reset, &[b"DATA\r\n"], false)
                    .await?;
                let data = self.reply(Phase::Data).await?;
                if !accepted(&mail, &rcpts) {
                    if data.code == 354 {
                        // The server said 354 although nothing was
                        // accepted: end the DATA with nothing in it
                        // rather than send the content.
                        self.write(b".\r\n", Phase::DataEnd).await?;
                        let _ = self.reply(Phase::DataEnd).await?;
                    }
                    return Ok(Transaction::over(mail, rcpts));
                }
                (mail, rcpts, data)
            }
            false => {
                let (mail, rcpts) = self.stepwise(&mail, &rcpts).await?;
                if !accepted(&mail, &rcpts) {
                    return Ok(Transaction::over(mail, rcpts));
                }
                let data = self.command("DATA", Phase::Data).await?;
                (mail, rcpts, data)
            }
        };
        if data_reply.code != 354 {
            if !(400..600).contains(&data_reply.code) {
                // RFC 5321 §4.1.1.4: only 354 lets the content go, and
                // only the reply after it takes the message. A 250 here
                // is a server out of step, not a delivery.
                return Err(ClientError::Protocol(
                    Phase::Data,
                    format!(
                        "DATA answered with {} instead of 354, before any content",
                        reply_excerpt(&data_reply.as_sent())
                    ),
                ));
            }
            // DATA refused: its reply decides for the accepted recipients.
            return Ok(Transaction {
                mail: mail_reply,
                rcpts: rcpt_replies,
                data: Some(data_reply),
            });
        }
        self.nothing_before_content()?;
        self.send_content(content).await?;
        let data = self.reply(Phase::DataEnd).await?;
        Ok(Transaction {
            mail: mail_reply,
            rcpts: rcpt_replies,
            data: Some(data),
        })
    }

    /// MAIL, the RCPTs and the pieces of `tail` (DATA, or a whole BDAT
    /// chunk: its command and its bytes) in one write (RFC 2920), a kept connection's RSET in front; then the
    /// replies to MAIL and the RCPTs (the tail's are the caller's).
    /// A refused RSET is an error in [`Phase::Rset`] (nothing of the
    /// message was taken; the caller tries a new connection), unless
    /// `tail_is_content` and the server goes on answering: then it may
    /// have taken the message after all, and its replies decide, as they
    /// do without a RSET.
    async fn pipelined(
        &mut self,
        mail: &str,
        rcpts: &[String],
        reset: bool,
        tail: &[&[u8]],
        tail_is_content: bool,
    ) -> Result<(Reply, Vec<Reply>), ClientError> {
        // RFC 2920: RSET may open a group too; a kept connection's
        // RSET goes in front, and a failure there (written to a dead
        // connection, or refused) is an error in the RSET phase.
        let tail_len: usize = tail.iter().map(|piece| piece.len()).sum();
        let mut batch = Vec::with_capacity(64 + mail.len() + 64 * rcpts.len() + tail_len);
        if reset {
            batch.extend_from_slice(b"RSET\r\n");
        }
        batch.extend_from_slice(mail.as_bytes());
        for rcpt in rcpts {
            batch.extend_from_slice(rcpt.as_bytes());
        }
        for piece in tail {
            batch.extend_from_slice(piece);
        }
        let first = if reset { Phase::Rset } else { Phase::Mail };
        self.write(&batch, first).await?;
        let mut refused_reset = None;
        if reset {
            let reply = self.reply(Phase::Rset).await?;
            if let Err(refused) = Self::reset_accepted(&reply) {
                // 421: the server is closing the connection.
                if !tail_is_content || reply.code == 421 {
                    return Err(refused);
                }
                refused_reset = Some(refused);
            }
        }
        let mail_reply = match self.reply(Phase::Mail).await {
            Ok(reply) => reply,
            // Nothing more after the refused RSET: nothing was taken.
            Err(e) => return Err(refused_reset.unwrap_or(e)),
        };
        let mut rcpt_replies = Vec::with_capacity(rcpts.len());
        for _ in rcpts {
            rcpt_replies.push(self.reply(Phase::Rcpt).await?);
        }
        Ok((mail_reply, rcpt_replies))
    }

    /// MAIL, then each RCPT, each answered before the next; no RCPT
    /// after a refused MAIL.
    async fn stepwise(
        &mut self,
        mail: &str,
        rcpts: &[String],
    ) -> Result<(Reply, Vec<Reply>), ClientError> {
        self.write(mail.as_bytes(), Phase::Mail).await?;
        let mail_reply = self.reply(Phase::Mail).await?;
        let mut rcpt_replies = Vec::with_capacity(rcpts.len());
        if !mail_reply.is_positive() {
            return Ok((mail_reply, rcpt_replies));
        }
        for rcpt in rcpts {
            self.write(rcpt.as_bytes(), Phase::Rcpt).await?;
            rcpt_replies.push(self.reply(Phase::Rcpt).await?);
        }
        Ok((mail_reply, rcpt_replies))
    }

    /// Reads what has already arrived, without waiting (a zero deadline
    /// still polls the read once); true when bytes wait unread.
    fn unread(&mut self, phase: Phase) -> Result<bool, ClientError> {
        if self.pending.is_empty() {
            let mut chunk = [0u8; 4096];
            // One look at what has come, not a wait. (A zero timeout
            // waited for the timer's next tick, about 1 ms, whenever
            // nothing had come, which is the usual case: twice for each
            // message on a kept connection, two thirds of its time.)
            let read = std::pin::pin!(self.stream.read(&mut chunk));
            let mut look = Context::from_waker(Waker::noop());
            match read.poll(&mut look) {
                Poll::Ready(Ok(0)) => return Err(ClientError::Closed(phase)),
                Poll::Ready(Ok(n)) => self.pending.extend_from_slice(&chunk[..n]),
                Poll::Ready(Err(e)) => return Err(ClientError::Io(phase, e)),
                Poll::Pending => {}
            }
        }
        Ok(!self.pending.is_empty())
    }

    /// After `354` the server has nothing to say until the content has
    /// ended (RFC 5321 §4.1.1.4): a reply already here, buffered or in
    /// the socket, answers content it has not seen, so the reply read
    /// after the dot would be taken for an acceptance it is not.
    fn nothing_before_content(&mut self) -> Result<(), ClientError> {
        if !self.unread(Phase::Data)? {
            return Ok(());
        }
        let early = String::from_utf8_lossy(&self.pending);
        Err(ClientError::Protocol(
            Phase::Data,
            format!(
                "the server sent {} after 354, before the content",
                reply_excerpt(early.lines().next().unwrap_or_default())
            ),
        ))
    }

    /// Whether a kept connection can carry another message: the server
    /// said nothing since its last reply and did not hang up. A surplus
    /// reply (a server that answers the end of data twice) would be read
    /// as the answer to the next command, every reply after it one step
    /// behind.
    pub fn in_step(&mut self) -> bool {
        matches!(self.unread(Phase::Rset), Ok(false))
    }

    /// RSET between transactions on a reused connection.
    pub async fn reset(&mut self) -> Result<Reply, ClientError> {
        self.command("RSET", Phase::Rset).await
    }

    /// Whether a kept connection can carry the next transaction. It must
    /// be [in step](Self::in_step); then, with PIPELINING, its RSET goes
    /// out in front of the next MAIL (one round trip fewer; a failure
    /// comes back from [`transaction`](Self::transaction) as an error in
    /// [`Phase::Rset`], and nothing of the message has been sent), and
    /// without it the RSET is sent and answered now.
    pub async fn ready_for_next(&mut self) -> bool {
        if !self.in_step() {
            return false;
        }
        if self.capabilities.pipelining {
            self.reset_first = true;
            return true;
        }
        self.reset().await.is_ok_and(|r| r.is_positive())
    }

    /// A refused RSET: the connection is no use for another message.
    fn reset_accepted(reply: &Reply) -> Result<(), ClientError> {
        match reply.is_positive() {
            true => Ok(()),
            false => Err(ClientError::Protocol(
                Phase::Rset,
                format!("RSET answered {}", reply_excerpt(&reply.as_sent())),
            )),
        }
    }

    /// QUIT, politely, not waiting long for the answer.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = self.write(b"QUIT\r\n", Phase::Quit).await;
            let _ = self.reply(Phase::Quit).await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }
}

/// Whether the transaction goes on to the content: MAIL and at least
/// one recipient accepted.
fn accepted(mail: &Reply, rcpts: &[Reply]) -> bool {
    mail.is_positive() && rcpts.iter().any(Reply::is_positive)
}

impl Transaction {
    /// Over before the content: MAIL refused, or no recipient accepted.
    fn over(mail: Reply, rcpts: Vec<Reply>) -> Transaction {
        Transaction {
            mail,
            rcpts,
            data: None,
        }
    }
}

/// How much content one write with the DATA block deadline carries.
const CONTENT_PIECE: usize = 64 * 1024;
/// How much content is read (from the spool file) and stuffed at a time:
/// with the stuffed copy, what one delivery holds of a large message.
const CONTENT_READ: usize = 128 * 1024;

/// A server's words for an error message: quoted, at most 80 characters.
fn reply_excerpt(text: &str) -> String {
    let short: String = text.chars().take(80).collect();
    format!("{short:?}")
}

#[path = "client_chunked.rs"]
mod chunked;

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
