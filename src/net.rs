//! What every listener of the relay shares (SMTP, metrics, control socket).

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The next accepted connection, or `None` once `shutdown` is cancelled.
/// An accept error (out of file descriptors and the like) is logged and
/// retried after a short pause: a listener keeps serving.
pub async fn next_connection<T, F>(
    listener: &str,
    shutdown: &CancellationToken,
    mut accept: impl FnMut() -> F,
) -> Option<T>
where
    F: Future<Output = io::Result<T>>,
{
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            accepted = accept() => match accepted {
                Ok(connection) => return Some(connection),
                Err(e) => {
                    tracing::warn!(error = %e, listener, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}
