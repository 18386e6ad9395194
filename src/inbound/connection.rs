//! One task per client connection: reads bytes into the session, writes
//! its replies, keeps its content in the spool, and performs what it asks
//! (STARTTLS, commit, close) under a named deadline for every phase. Its log lines are in `logging`.

mod logging;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use self::logging::log_refusal;
use super::data_clock::DataClock;
use super::session::{Action, CommitError, Context, Output, Session};
use super::ServerState;
use crate::queue::spool::MessageWriter;
use crate::smtp::replies;

/// How a plaintext stretch of the session ended.
enum Outcome {
    Closed,
    StartTls,
}

/// Why a connection ended other than by QUIT; for the session log line.
#[derive(Debug)]
enum Ended {
    Timeout(&'static str),
    Io(io::Error),
}

impl From<io::Error> for Ended {
    fn from(e: io::Error) -> Self {
        Ended::Io(e)
    }
}

/// Serves one client from greeting to close.
pub async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<ServerState>,
    implicit_tls: bool,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut gauge = crate::metrics::SessionGauge::open();
    let mut session = Session::new(state.policy.clone(), peer.ip(), None);
    // The PTR lookup runs beside the session; the first message waits for
    // what is left of its budget, so a dead DNS costs nothing else.
    let reverse = state.dns.clone().map(|dns| {
        let ip = peer.ip();
        tokio::spawn(async move { dns.reverse(ip, REVERSE_LOOKUP_BUDGET).await })
    });
    let mut driver = Driver {
        peer,
        state: &state,
        shutdown,
        messages: 0,
        reverse,
    };
    let result = if implicit_tls {
        driver.secure(stream, &mut session, true).await
    } else {
        let mut stream = stream;
        match driver.drive(&mut stream, &mut session, true).await {
            Ok(Outcome::StartTls) => driver.secure(stream, &mut session, false).await,
            Ok(Outcome::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    };
    gauge.connector = session.connector_name().unwrap_or("-").to_string();
    gauge.tls = session.tls_version().unwrap_or("plaintext").to_string();
    driver.learn_name(&mut session).await;
    let client_name = session.reverse_name().unwrap_or("unknown");
    let connector = session.connector_name().unwrap_or("-");
    let messages = driver.messages;
    match result {
        Ok(()) => {
            tracing::info!(client = %peer, client_name, connector, messages, "session closed")
        }
        Err(Ended::Timeout(phase)) => {
            tracing::info!(client = %peer, client_name, connector, phase, messages, "session timed out")
        }
        Err(Ended::Io(e)) => {
            tracing::info!(client = %peer, client_name, connector, error = %e, messages, "session ended")
        }
    }
}

/// How long a client's reverse lookup may take, counted from its connection.
const REVERSE_LOOKUP_BUDGET: Duration = Duration::from_secs(2);

struct Driver<'a> {
    peer: SocketAddr,
    state: &'a ServerState,
    shutdown: CancellationToken,
    messages: u64,
    reverse: Option<tokio::task::JoinHandle<Option<String>>>,
}

impl Driver<'_> {
    /// Gives the session the client's reverse name if the lookup is done
    /// (never waits for it).
    async fn learn_name(&mut self, session: &mut Session) {
        if self.reverse.as_ref().is_some_and(|r| r.is_finished()) {
            if let Some(Ok(Some(name))) = match self.reverse.take() {
                Some(lookup) => Some(lookup.await),
                None => None,
            } {
                session.set_reverse_name(name);
            }
        }
    }

    /// The TLS handshake, then the rest of the session over TLS.
    async fn secure(
        &mut self,
        stream: TcpStream,
        session: &mut Session,
        greet: bool,
    ) -> Result<(), Ended> {
        let Some(tls) = &self.state.tls else {
            return Ok(());
        };
        let deadline = Instant::now() + self.state.timeouts.tls_handshake;
        let context = Context {
            command: match greet {
                true => "(implicit TLS)".into(),
                false => "STARTTLS".into(),
            },
            phase: Some("TLS handshake"),
            ..Context::default()
        };
        let mut tls_stream = match timeout_at(deadline, tls.acceptor().accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                self.learn_name(session).await;
                let reason = crate::tls::reason::io_reason(&e);
                log_refusal(self.peer, session, &context, None, Some(&reason));
                return Err(Ended::Io(e));
            }
            Err(_) => {
                self.learn_name(session).await;
                log_refusal(self.peer, session, &context, None, Some("timed out"));
                return Err(Ended::Timeout("TLS handshake"));
            }
        };
        let info = tls.session_info(tls_stream.get_ref().1);
        tracing::info!(
            client = %self.peer,
            tls = %info.version,
            cipher = %info.cipher,
            key_exchange = info.group.as_deref().unwrap_or("unknown"),
            "TLS established"
        );
        session.tls_established(info);
        self.drive(&mut tls_stream, session, greet)
            .await
            .map(|_| ())
    }

    /// Runs the session over `stream` until it closes or asks for STARTTLS.
    async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        session: &mut Session,
        greet: bool,
    ) -> Result<Outcome, Ended> {
        let mut out = Output::default();
        if greet {
            session.greeting(&mut out);
        }
        let mut input: Vec<u8> = Vec::new();
        let mut writer: Option<MessageWriter> = None;
        let mut last_command = Instant::now();
        let mut data = DataClock::default();
        let mut in_data = false;
        let mut shutting_down = false;
        // An action the session returned from a callback (`message_opened`
        // completes `BDAT 0 LAST` at once with `Commit`), run before reading on.
        let mut next: Option<Action> = None;
        loop {
            // Everything already read, as far as the session can go.
            loop {
                let action = match next.take() {
                    Some(action) => action,
                    None => {
                        let (used, action) = session.feed(&input, &mut out);
                        input.drain(..used);
                        if used > 0 && session.awaiting_command() {
                            last_command = Instant::now();
                        }
                        self.store(&mut writer, &mut out).await;
                        action
                    }
                };
                match action {
                    Action::None => break,
                    Action::OpenMessage => {
                        next = self.open_message(session, &mut writer, &mut out).await;
                        data = DataClock::start();
                    }
                    Action::Commit => {
                        self.commit(session, writer.take(), &mut out).await;
                        last_command = Instant::now();
                    }
                    Action::Abort => writer = None,
                    Action::StartTls => {
                        self.send(stream, session, &mut out).await?;
                        return Ok(Outcome::StartTls);
                    }
                    Action::Close => return self.close(stream, session, &mut out).await,
                }
            }
            if !out.replies.is_empty() {
                self.send(stream, session, &mut out).await?;
            }
            // Between BDAT chunks the client is at the command deadline;
            // the content clock stops, and starts again with the next chunk.
            match (in_data, session.in_data()) {
                (false, true) => data.resume(),
                (true, false) => data.pause(),
                _ => {}
            }
            in_data = session.in_data();
            let (deadline, phase) = match in_data {
                true => (data.deadline(self.state.timeouts.data), "DATA"),
                false => (last_command + self.state.timeouts.command, "command"),
            };
            make_room(&mut input, in_data);
            tokio::select! {
                read = timeout_at(deadline, stream.read_buf(&mut input)) => match read {
                    Ok(Ok(0)) => return Ok(Outcome::Closed),
                    Ok(Ok(n)) => {
                        if session.in_data() && data.too_slow(n, self.state.timeouts.min_data_rate) {
                            out.context.phase = Some("DATA rate");
                            session.closing(&mut out, &replies::TOO_SLOW);
                            self.close(stream, session, &mut out).await?;
                            return Err(Ended::Timeout("DATA rate"));
                        }
                    }
                    Ok(Err(e)) => return Err(Ended::Io(e)),
                    Err(_) => {
                        out.context.phase = Some(phase);
                        session.timed_out(&mut out);
                        self.close(stream, session, &mut out).await?;
                        return Err(Ended::Timeout(phase));
                    }
                },
                _ = self.shutdown.cancelled(), if !shutting_down => {
                    shutting_down = true;
                    session.shut_down();
                    if !session.in_data() && input.is_empty() {
                        out.context.phase = Some("shutdown");
                        session.closing(&mut out, &replies::SHUTTING_DOWN);
                        return self.close(stream, session, &mut out).await;
                    }
                }
            }
        }
    }

    /// Opens a spool file for the session's transaction (after the
    /// client's reverse lookup, for the Received header); returns what the
    /// session asks next (`BDAT 0 LAST` completes at once).
    async fn open_message(
        &mut self,
        session: &mut Session,
        writer: &mut Option<MessageWriter>,
        out: &mut Output,
    ) -> Option<Action> {
        if let Some(lookup) = self.reverse.take() {
            if let Ok(Some(name)) = lookup.await {
                session.set_reverse_name(name);
            }
        }
        let mut envelope = session.envelope().cloned().unwrap_or_default();
        let now = time::OffsetDateTime::now_utc();
        envelope.received_at = now.unix_timestamp();
        let new = self.state.spool.create(&envelope);
        let then = session.message_opened(new.id(), &crate::smtp::date::rfc5322_date(now), out);
        *writer = Some(new);
        self.store(writer, out).await;
        (then != Action::None).then_some(then)
    }

    /// Makes the message durable and tells the session, which answers
    /// `250` only then (after the flow control's delay, if delivery is
    /// behind); logs and counts it as accepted.
    async fn commit(
        &mut self,
        session: &mut Session,
        writer: Option<MessageWriter>,
        out: &mut Output,
    ) {
        let result = match writer {
            Some(w) => w.commit().await.map_err(|e| {
                tracing::error!(error = %e, "could not make a message durable");
                if e.is_no_space() {
                    CommitError::NoSpace
                } else {
                    CommitError::Failed
                }
            }),
            None => Err(CommitError::Failed),
        };
        if let Ok(id) = &result {
            self.messages += 1;
            self.log_accepted(id, session).await;
            crate::metrics::message_accepted(session.connector_name().unwrap_or("-"));
            if session.envelope().is_some_and(|e| e.requiretls) {
                crate::metrics::requiretls_message(crate::metrics::RequireTlsOutcome::Accepted);
            }
            self.state.queue.queued(id);
            self.state.policy.flow.slow_down(&self.shutdown).await;
        }
        session.committed(result.map(|_| ()), out);
    }

    /// Moves the session's content into the open message, if any.
    async fn store(&self, writer: &mut Option<MessageWriter>, out: &mut Output) {
        if out.content.is_empty() {
            return;
        }
        if let Some(w) = writer.as_mut() {
            if let Err(e) = w.write(&out.content).await {
                // The commit will fail too and the client gets 451/452.
                tracing::error!(error = %e, "could not write message content");
            }
        }
        out.content.clear();
    }

    async fn close<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        session: &mut Session,
        out: &mut Output,
    ) -> Result<Outcome, Ended> {
        self.send(stream, session, out).await?;
        // The TLS close_notify is a write too.
        let _ = timeout(self.state.timeouts.command, stream.shutdown()).await;
        Ok(Outcome::Closed)
    }

    /// Writes replies and flushes them within `command_timeout` (DESIGN
    /// §4): a client that pipelines commands and never reads its replies
    /// fills the socket buffers, and then this write would wait forever,
    /// holding the session and its connection slot. Bounded per write like
    /// every phase of tokio-rustls' example server.
    ///
    /// What such a client can make us hold is bounded too: the session
    /// reads only after its replies are written, so it keeps at most one
    /// read of input (`COMMAND_READ` plus a partial line) and the replies
    /// to it; the rest waits in the kernel's buffers, under TCP flow
    /// control.
    ///
    /// Refusals among the replies are logged first; the replies are
    /// cleared once written.
    async fn send<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        session: &mut Session,
        out: &mut Output,
    ) -> Result<(), Ended> {
        self.log_refusals(session, out).await;
        let replies = std::mem::take(&mut out.replies);
        let write = async {
            stream.write_all(&replies).await?;
            stream.flush().await
        };
        match timeout(self.state.timeouts.command, write).await {
            Ok(result) => result.map_err(Ended::Io),
            Err(_) => Err(Ended::Timeout("reply write")),
        }
    }
}

/// Read buffer room while commands are expected: a pipelined burst of
/// commands reads in a few pieces; an idle session holds no more than this.
const COMMAND_READ: usize = 1024;
/// Read buffer room while message content arrives.
const DATA_READ: usize = 16 * 1024;

/// A session waiting for a command keeps a small buffer (an idle one
/// holds little memory); content gets room for full reads.
fn make_room(input: &mut Vec<u8>, in_data: bool) {
    let room = if in_data { DATA_READ } else { COMMAND_READ };
    if input.is_empty() && input.capacity() > room {
        *input = Vec::with_capacity(room);
    } else {
        input.reserve(room);
    }
}
