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

/// The open-file limit (RLIMIT_NOFILE) before and after raising the soft
/// limit to the hard one, as daemons do: every session is a descriptor,
/// and the soft default (often 1024) would refuse connections long before
/// `max_connections`. Only the soft limit moves, so no privilege is needed.
pub fn raise_open_file_limit() -> io::Result<(libc::rlim_t, libc::rlim_t)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((before, limit.rlim_cur))
}
