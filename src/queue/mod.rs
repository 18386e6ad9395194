//! The queue: what is kept of every accepted message.

pub mod admin;
pub mod backlog;
pub mod body;
pub mod bulk;
pub mod control;
pub mod delivery;
pub mod dsn;
pub mod envelope;
pub mod finish;
pub mod handle;
pub mod manager;
pub mod modes;
pub mod qid;
pub mod schedule;
pub mod spool;
pub mod state;

/// Runs file work on tokio's blocking pool, so that no runtime thread
/// waits for the disk: a slow or busy disk must not stall the sessions
/// and attempts sharing the thread.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| std::io::Error::other(format!("queue file task failed: {e}")))
}
