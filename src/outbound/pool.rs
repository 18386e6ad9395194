//! Connections kept between messages, and the per-destination limit
//! (`[delivery] max_connections_per_destination`).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use super::client::Client;
use super::deliver::{Channel, Deliverer, TlsStream};
use super::route::Resolve;

/// How long a connection may wait for the next message to its server.
const IDLE_LIMIT: Duration = Duration::from_secs(5);

/// An open SMTP session, before or after STARTTLS.
pub(super) enum Session {
    Plain(Client<TcpStream>),
    Tls(Box<Client<TlsStream>>),
}

impl Session {
    pub(super) async fn quit(self) {
        match self {
            Session::Plain(client) => client.quit().await,
            Session::Tls(client) => client.quit().await,
        }
    }
}

/// A connection between messages, with what its TLS was.
pub(super) struct Idle {
    pub(super) session: Session,
    pub(super) tls: String,
    pub(super) channel: Channel,
    since: std::time::Instant,
}

impl<R: Resolve> Deliverer<R> {
    /// An idle connection for `key` that still answers RSET, if any.
    pub(super) async fn take(&self, key: &str) -> Option<Idle> {
        loop {
            let idle = self.idle.lock().ok()?.get_mut(key)?.pop()?;
            if idle.since.elapsed() > IDLE_LIMIT {
                tokio::spawn(idle.session.quit());
                continue;
            }
            let mut idle = idle;
            // Out of step (the server said more than it was asked) or
            // gone: dropped, the message gets a new connection.
            let alive = match &mut idle.session {
                Session::Plain(client) => client.ready_for_next().await,
                Session::Tls(client) => client.ready_for_next().await,
            };
            if alive {
                return Some(idle);
            }
        }
    }

    /// Closes (QUIT) the connections idle longer than the limit, so a
    /// server's session slots are not held for nothing.
    pub fn sweep_idle(&self) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        for list in idle.values_mut() {
            let (stale, fresh): (Vec<Idle>, Vec<Idle>) =
                list.drain(..).partition(|i| i.since.elapsed() > IDLE_LIMIT);
            *list = fresh;
            for old in stale {
                tokio::spawn(old.session.quit());
            }
        }
        idle.retain(|_, list| !list.is_empty());
    }

    /// Keeps a cleanly finished connection for the next message to the
    /// same server, or closes it when enough are kept already.
    /// A plaintext session after TLS failed is not kept: the next message
    /// tries TLS again, so a broken handshake buys no later plaintext.
    pub(super) fn park(&self, key: &str, session: Option<Session>, tls: String, channel: Channel) {
        let Some(session) = session else { return };
        if matches!(channel, Channel::Fallback) {
            tokio::spawn(session.quit());
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let list = idle.entry(key.to_string()).or_default();
        if list.len() >= self.per_destination {
            drop(idle);
            tokio::spawn(session.quit());
            return;
        }
        list.push(Idle {
            session,
            tls,
            channel,
            since: std::time::Instant::now(),
        });
    }

    pub(super) fn destination_slot(&self, destination: &str) -> Arc<tokio::sync::Semaphore> {
        let Ok(mut map) = self.destinations.lock() else {
            return Arc::new(tokio::sync::Semaphore::new(self.per_destination));
        };
        map.entry(destination.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_destination)))
            .clone()
    }
}
