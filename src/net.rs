//! What every listener of the relay shares (SMTP, metrics, control socket).

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Binds a TCP listener (`role`: "smtp", "implicit-tls", "metrics"). A
/// refusal keeps its kind and says what to do: who holds a busy address,
/// how a service gets a port below 1024 without root.
pub async fn bind(role: &str, addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), bind_failure(role, addr, &e)))
}

/// The text of a failed bind, with the administrator's next step.
fn bind_failure(role: &str, addr: std::net::SocketAddr, e: &io::Error) -> String {
    let advice = match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            ": another program listens there (`ss -ltnp 'sport = :{}'` shows which); \
             stop it or choose another address",
            addr.port()
        ),
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            ": ports below 1024 need root or the CAP_NET_BIND_SERVICE capability \
             (the systemd unit grants it with AmbientCapabilities=CAP_NET_BIND_SERVICE; \
             by hand: setcap cap_net_bind_service=+ep on the binary)"
                .to_string()
        }
        io::ErrorKind::AddrNotAvailable => {
            ": no interface of this machine has that address".to_string()
        }
        _ => String::new(),
    };
    format!("cannot listen on {addr} ({role}): {e}{advice}")
}

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
