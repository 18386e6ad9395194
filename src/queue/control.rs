//! The control socket: how `tlsrelay queue retry|delete|bounce|hold|release` reach a
//! running relay, so that the queue manager, which owns the schedule and
//! knows which messages are being delivered this moment, makes the change
//! (DESIGN.md §2: "safe while the daemon runs").
//!
//! `SPOOL_DIR/control.sock` is a Unix socket, mode 0600 in a 0700 folder
//! (the relay's user; root always). One request per connection: a line of JSON
//! ([`Request`]), answered by a line of JSON ([`Response`]). Reading the
//! queue (`list`, `show`) needs no socket: the files are read directly.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// The socket's file name in the spool folder.
pub const SOCKET: &str = "control.sock";
/// A request is one short line; anything longer is not ours.
const MAX_LINE: u64 = 4096;
/// An answer is one line of at most this many bytes.
const MAX_ANSWER: u64 = 16 << 20;
/// How long one exchange may take (a bounce writes and syncs a notice).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// What an administrator asks of the queue manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    /// Try now: one message, or (`id: None`) every waiting message.
    Retry { id: Option<String> },
    /// Remove a message without telling anyone.
    Delete { id: String },
    /// Fail every pending recipient and return the message to its sender.
    Bounce { id: String },
    /// `delete --all`, `hold`, `release`: one message or every match.
    Bulk {
        action: super::bulk::Action,
        selection: super::bulk::Selection,
    },
    /// `tlsrelay tls-memory list`: the broken-TLS memory, as a table.
    TlsMemoryList,
    /// `tlsrelay tls-memory forget HOST`, or everything (`--all`, `None`).
    TlsMemoryForget { host: Option<String> },
}

/// The answer: did it work, and what happened, in words for the terminal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    pub message: String,
}

impl Response {
    pub fn ok(message: impl Into<String>) -> Self {
        Response {
            ok: true,
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Response {
            ok: false,
            message: message.into(),
        }
    }
}

/// A request on its way to the queue manager, with where to answer.
pub type Command = (Request, oneshot::Sender<Response>);

/// Answers the requests that need no queue manager (the broken-TLS
/// memory's); `None` for the others.
pub type Local = Arc<dyn Fn(&Request) -> Option<Response> + Send + Sync>;

/// Where the socket of the spool in `spool_dir` is.
pub fn socket_path(spool_dir: &Path) -> PathBuf {
    spool_dir.join(SOCKET)
}

/// Binds the socket. Call only while holding the spool's lock: a socket
/// file left by a relay that died is removed, and the lock proves that
/// nobody else is listening on it.
pub fn bind(spool_dir: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(spool_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path)?;
    // The relay's user alone, as everything in the spool (DESIGN.md §6).
    std::fs::set_permissions(
        &path,
        std::fs::Permissions::from_mode(super::modes::FILE_MODE),
    )?;
    Ok(listener)
}

/// Answers requests until `shutdown`: `local` those it knows, the queue
/// manager the others.
pub async fn serve(
    listener: UnixListener,
    manager: mpsc::UnboundedSender<Command>,
    local: Local,
    shutdown: CancellationToken,
) {
    while let Some((stream, _)) =
        crate::net::next_connection("control", &shutdown, || listener.accept()).await
    {
        let (manager, local) = (manager.clone(), local.clone());
        tokio::spawn(async move {
            let exchange = exchange(stream, &manager, &local);
            if let Err(e) = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
                tracing::warn!(error = %e, "control socket: request timed out");
            }
        });
    }
}

async fn exchange(stream: UnixStream, manager: &mpsc::UnboundedSender<Command>, local: &Local) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let read = BufReader::new(read.take(MAX_LINE))
        .read_line(&mut line)
        .await;
    let response = match read.map(|_| serde_json::from_str::<Request>(&line)) {
        Err(e) => Response::error(format!("reading the request: {e}")),
        Ok(Err(e)) => Response::error(format!("not a request: {e}")),
        Ok(Ok(request)) => match local(&request) {
            Some(response) => response,
            None => {
                tracing::info!(?request, "queue command from the control socket");
                let (reply, answer) = oneshot::channel();
                match manager.send((request, reply)) {
                    Ok(()) => answer
                        .await
                        .unwrap_or_else(|_| Response::error("the relay is stopping")),
                    Err(_) => Response::error("the relay is stopping"),
                }
            }
        },
    };
    let mut text = serde_json::to_string(&response).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    let _ = write.write_all(text.as_bytes()).await;
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No relay listens: the socket is missing or refuses.
    #[error("no relay is listening on {}", path.display())]
    NotRunning { path: PathBuf },
    #[error("control socket {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Sends `request` to the relay whose spool is `spool_dir`.
pub async fn send(spool_dir: &Path, request: &Request) -> Result<Response, ControlError> {
    let path = socket_path(spool_dir);
    let io_error = |source| ControlError::Io {
        path: path.clone(),
        source,
    };
    let mut stream = match UnixStream::connect(&path).await {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ControlError::NotRunning { path });
        }
        Err(e) => return Err(io_error(e)),
    };
    let exchange = async {
        let mut text = serde_json::to_string(request).map_err(io::Error::other)?;
        text.push('\n');
        stream.write_all(text.as_bytes()).await?;
        let mut line = String::new();
        // A `tls-memory list` table may be long.
        BufReader::new(stream.take(MAX_ANSWER))
            .read_line(&mut line)
            .await?;
        serde_json::from_str::<Response>(&line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unreadable answer: {e}"),
            )
        })
    };
    match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
        Ok(result) => result.map_err(io_error),
        Err(_) => Err(io_error(io::Error::new(
            io::ErrorKind::TimedOut,
            "the relay did not answer",
        ))),
    }
}
