//! The content by BDAT (RFC 3030 CHUNKING), when the server offers it.
//!
//! A chunk ends by its size, so nothing in the content is read as its
//! end (no dot-stuffing, no `.` line) and the server has no `354` to
//! send. A message of one chunk goes in the same write as its MAIL and
//! RCPTs when the server pipelines (RFC 2920): one round trip per message
//! instead of DATA's two. A larger one first waits for the envelope's
//! replies, so nothing is streamed to a server that took no recipient,
//! then goes out a chunk per read from the spool, never held whole.
//!
//! Line endings leave as CRLF, as with DATA ([`Stuffer::for_chunks`]):
//! a bare CR or LF never leaves us, whichever way the content goes.

use std::borrow::Cow;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{accepted, reply_excerpt, Client, ClientError, Phase, Transaction, CONTENT_READ};
use crate::queue::body::{Body, Pieces};
use crate::smtp::reply::Reply;
use crate::smtp::stuff::Stuffer;

/// With PIPELINING, at most this many chunks are sent ahead of their
/// replies (RFC 3030 §4.2): 4 MiB in flight, and the replies they wait
/// for far below any socket buffer, so the server never blocks writing
/// them while we block writing chunks.
const WINDOW: usize = 32;

/// One chunk: its bytes, line endings made CRLF, and whether it is the
/// last.
struct Chunk {
    wire: Vec<u8>,
    last: bool,
}

impl Chunk {
    /// The BDAT command that announces it.
    fn command(&self) -> String {
        let last = if self.last { " LAST" } else { "" };
        format!("BDAT {}{last}\r\n", self.wire.len())
    }
}

/// The content as chunks, a read from the spool each; one read ahead, so
/// that the last chunk is known when it is sent (`LAST` with it, rather
/// than an empty chunk after it).
struct Chunks<'a> {
    pieces: Pieces<'a>,
    stuffer: Stuffer,
    ahead: Option<Cow<'a, [u8]>>,
}

impl<'a> Chunks<'a> {
    fn new(content: &'a Body) -> Self {
        Chunks {
            pieces: content.pieces(CONTENT_READ),
            stuffer: Stuffer::for_chunks(),
            ahead: None,
        }
    }

    /// The next chunk; an empty last one for empty content. Not called
    /// after the last.
    async fn next(&mut self) -> Result<Chunk, ClientError> {
        let current = match self.ahead.take() {
            Some(piece) => Some(piece),
            None => self.read().await?,
        };
        if current.is_some() {
            self.ahead = self.read().await?;
        }
        let len = current.as_ref().map_or(0, |piece| piece.len());
        let mut wire = Vec::with_capacity(len + len / 32 + 2);
        if let Some(piece) = &current {
            self.stuffer.stuff(piece, &mut wire);
        }
        let last = self.ahead.is_none();
        if last {
            self.stuffer.end_line(&mut wire);
        }
        Ok(Chunk { wire, last })
    }

    /// A piece that cannot be read is an error before the `LAST` chunk:
    /// the caller drops the connection and the server takes nothing.
    async fn read(&mut self) -> Result<Option<Cow<'a, [u8]>>, ClientError> {
        match self.pieces.next().await {
            None => Ok(None),
            Some(Ok(piece)) => Ok(Some(piece)),
            Some(Err(e)) => Err(ClientError::Content(e)),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// The transaction with its content by BDAT; the envelope as
    /// [`transaction`](Self::transaction) made it (a kept connection's
    /// RSET still to send when `reset`, with PIPELINING).
    pub(super) async fn chunked(
        &mut self,
        mail: &str,
        rcpts: &[String],
        reset: bool,
        content: &Body,
    ) -> Result<Transaction, ClientError> {
        let mut chunks = Chunks::new(content);
        let first = chunks.next().await?;
        let pipelining = self.capabilities.pipelining;
        let whole = pipelining && first.last;
        let (mail_reply, rcpt_replies) = match pipelining {
            true => {
                let command = first.command();
                let tail: &[&[u8]] = match whole {
                    true => &[command.as_bytes(), &first.wire],
                    false => &[],
                };
                self.pipelined(mail, rcpts, reset, tail, whole).await?
            }
            false => self.stepwise(mail, rcpts).await?,
        };
        if !accepted(&mail_reply, &rcpt_replies) {
            if whole {
                // The chunk went with the envelope: the server read and
                // dropped it (RFC 3030 §2); its refusal is read to stay
                // in step.
                self.reply(Phase::DataEnd).await?;
            }
            return Ok(Transaction::over(mail_reply, rcpt_replies));
        }
        let data = match whole {
            true => chunk_reply(self.reply(Phase::DataEnd).await?)?,
            false => self.send_chunks(first, &mut chunks, pipelining).await?,
        };
        Ok(Transaction {
            mail: mail_reply,
            rcpts: rcpt_replies,
            data: Some(data),
        })
    }

    /// The chunks after an accepted envelope, with PIPELINING up to
    /// [`WINDOW`] ahead of their replies, without it each answered before
    /// the next. A refused chunk ends the sending (RFC 3030 §2: no more
    /// chunks after a 4xx or 5xx; the next transaction's RSET clears
    /// it), and its reply decides; otherwise the `LAST` chunk's does.
    async fn send_chunks(
        &mut self,
        first: Chunk,
        chunks: &mut Chunks<'_>,
        pipelining: bool,
    ) -> Result<Reply, ClientError> {
        let window = if pipelining { WINDOW } else { 0 };
        // Chunks sent but not yet answered, the `LAST` one aside.
        let mut waiting = 0;
        let mut chunk = first;
        loop {
            self.write(chunk.command().as_bytes(), Phase::Content)
                .await?;
            self.send_wire(&chunk.wire).await?;
            if chunk.last {
                break;
            }
            waiting += 1;
            while waiting > window {
                let reply = chunk_reply(self.reply(Phase::DataEnd).await?)?;
                waiting -= 1;
                if !reply.is_positive() {
                    self.skip_replies(waiting).await?;
                    return Ok(reply);
                }
            }
            chunk = chunks.next().await?;
        }
        let mut refused = None;
        for _ in 0..waiting {
            let reply = chunk_reply(self.reply(Phase::DataEnd).await?)?;
            if !reply.is_positive() {
                refused.get_or_insert(reply);
            }
        }
        let last = chunk_reply(self.reply(Phase::DataEnd).await?)?;
        Ok(refused.unwrap_or(last))
    }

    /// The replies to chunks sent after one that was refused: the server
    /// drops those chunks (RFC 3030 §4.2) and answers each.
    async fn skip_replies(&mut self, count: usize) -> Result<(), ClientError> {
        for _ in 0..count {
            self.reply(Phase::DataEnd).await?;
        }
        Ok(())
    }
}

/// A chunk's reply: 2xx takes it, 4xx or 5xx refuses it. Anything else
/// (a `354` to a BDAT, say) is a server out of step, not a delivery.
fn chunk_reply(reply: Reply) -> Result<Reply, ClientError> {
    match reply.code {
        200..=299 | 400..=599 => Ok(reply),
        _ => Err(ClientError::Protocol(
            Phase::DataEnd,
            format!("BDAT answered with {}", reply_excerpt(&reply.as_sent())),
        )),
    }
}

#[cfg(test)]
#[path = "client_chunked_tests.rs"]
mod tests;
