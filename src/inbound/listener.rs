//! The listeners: accept loops, connection limits (`421 4.7.0`), and the
//! graceful stop (stop accepting, `421 4.3.2` to new commands, let message
//! transfers finish within `shutdown_grace`).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::policy::IpCounts;
use super::ServerState;
use crate::current::Current;

/// The bound listeners of one server.
pub struct Listeners {
    sockets: Vec<(TcpListener, bool)>,
    /// Replaced by a reload; each session keeps the one it started with.
    state: Current<ServerState>,
    limits: Arc<Limits>,
    shutdown_grace: Duration,
}

struct Limits {
    all: Arc<Semaphore>,
    per_ip: Mutex<IpCounts>,
    max_per_ip: usize,
}

/// A counted session; dropping it frees its places.
struct Admission {
    _permit: OwnedSemaphorePermit,
    ip: IpAddr,
    limits: Arc<Limits>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.limits.per_ip.lock() {
            counts.remove(self.ip);
        }
    }
}

impl Listeners {
    /// Binds every `listen` and `listen_implicit_tls` address.
    pub async fn bind(
        listen: &[SocketAddr],
        implicit_tls: &[SocketAddr],
        state: Current<ServerState>,
        max_connections: usize,
        max_per_ip: usize,
        shutdown_grace: Duration,
    ) -> io::Result<Listeners> {
        let mut sockets = Vec::new();
        for (addrs, implicit) in [(listen, false), (implicit_tls, true)] {
            for addr in addrs {
                let role = if implicit { "implicit-tls" } else { "smtp" };
                let socket = crate::net::bind(role, *addr).await?;
                sockets.push((socket, implicit));
            }
        }
        Ok(Listeners {
            sockets,
            state,
            limits: Arc::new(Limits {
                all: Arc::new(Semaphore::new(max_connections)),
                per_ip: Mutex::new(IpCounts::default()),
                max_per_ip,
            }),
            shutdown_grace,
        })
    }

    /// The addresses actually bound (port 0 resolved), plain ones first.
    pub fn local_addrs(&self) -> Vec<(SocketAddr, bool)> {
        self.sockets
            .iter()
            .filter_map(|(s, implicit)| s.local_addr().ok().map(|a| (a, *implicit)))
            .collect()
    }

    /// Accepts until `shutdown`, then waits for sessions to end, at most
    /// `shutdown_grace`, and cuts off the rest (their messages were not
    /// acknowledged, so nothing is lost).
    pub async fn run(self, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        for (socket, implicit) in self.sockets {
            let state = self.state.clone();
            let limits = self.limits.clone();
            let shutdown = shutdown.clone();
            let sessions = tracker.clone();
            tracker.spawn(async move {
                while let Some((stream, peer)) =
                    crate::net::next_connection("smtp", &shutdown, || socket.accept()).await
                {
                    let state = state.get();
                    let Some(admission) = admit(&limits, peer.ip()) else {
                        let hostname = state.policy.hostname.clone();
                        sessions.spawn(refuse(stream, peer, hostname));
                        continue;
                    };
                    let shutdown = shutdown.clone();
                    sessions.spawn(async move {
                        super::connection::handle(stream, peer, state, implicit, shutdown).await;
                        drop(admission);
                    });
                }
            });
        }
        shutdown.cancelled().await;
        tracker.close();
        if tokio::time::timeout(self.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.shutdown_grace, "sessions still running after the shutdown grace; closing them");
        }
    }
}

fn admit(limits: &Arc<Limits>, ip: IpAddr) -> Option<Admission> {
    let permit = limits.all.clone().try_acquire_owned().ok()?;
    let admitted = limits
        .per_ip
        .lock()
        .map(|mut c| c.try_add(ip, limits.max_per_ip))
        .unwrap_or(false);
    admitted.then(|| Admission {
        _permit: permit,
        ip,
        limits: limits.clone(),
    })
}

/// Over a limit: say so (RFC 5321 §3.1 allows 421 as the greeting) and hang up.
async fn refuse(mut stream: TcpStream, peer: SocketAddr, hostname: String) {
    let reply = format!("421 4.7.0 {hostname} Too many connections, try again later");
    tracing::info!(client = %peer, command = "(connect)", reply = reply.as_str(), "refused");
    let reply = format!("{reply}\r\n");
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
