//! Connections kept between messages, and the per-destination limit
//! (`[delivery] max_connections_per_destination`). One pool lives as long
//! as the deliverer, across reloads, so the limit holds while a reload
//! swaps the configuration under running attempts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::client::Client;
use super::ladder::Channel;
use super::stream::Stream;
use crate::transit::Method;

/// How long a connection may wait for the next message to its server.
const IDLE_LIMIT: Duration = Duration::from_secs(5);

/// A connection between messages, with what its TLS was.
pub(super) struct Idle {
    pub(super) client: Client<Stream>,
    /// The attempt log's `tls` field for it.
    pub(super) tls: String,
    pub(super) channel: Channel,
    /// How it carries mail (transit store) and its `sts=` word.
    pub(super) transit: (Method, &'static str),
    since: Instant,
    /// The settings it was opened and verified under (see [`Pool::renew`]).
    generation: u64,
}

/// The idle connections (by server, level and connector) and the
/// per-destination semaphores (by host and port).
pub(super) struct Pool {
    limit: AtomicUsize,
    /// Bumped by each reload.
    generation: AtomicU64,
    destinations: Mutex<HashMap<String, Arc<Semaphore>>>,
    idle: Mutex<HashMap<String, Vec<Idle>>>,
}

impl Pool {
    pub(super) fn new(limit: usize) -> Self {
        Pool {
            limit: AtomicUsize::new(limit),
            generation: AtomicU64::new(0),
            destinations: Mutex::default(),
            idle: Mutex::default(),
        }
    }

    /// A new limit from a reload: destinations get new semaphores; the
    /// attempts running finish on their old ones. An unchanged limit
    /// keeps every semaphore, so a reload never lets more through.
    pub(super) fn set_limit(&self, limit: usize) {
        if self.limit.swap(limit, Ordering::SeqCst) != limit {
            if let Ok(mut map) = self.destinations.lock() {
                map.clear();
            }
        }
    }

    /// Waits for one of the destination's connection slots.
    pub(super) async fn slot(&self, destination: &str) -> Option<OwnedSemaphorePermit> {
        let limit = self.limit.load(Ordering::SeqCst);
        let semaphore = match self.destinations.lock() {
            Ok(mut map) => map
                .entry(destination.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(limit)))
                .clone(),
            Err(_) => Arc::new(Semaphore::new(limit)),
        };
        semaphore.acquire_owned().await.ok()
    }

    /// An idle connection for `key` that still answers RSET, if any.
    /// The caller holds the destination's slot: one too old, or opened
    /// under settings a reload replaced, is closed before this returns,
    /// so a new connection never overlaps it.
    pub(super) async fn take(&self, key: &str) -> Option<Idle> {
        loop {
            let mut idle = self.idle.lock().ok()?.get_mut(key)?.pop()?;
            let generation = self.generation.load(Ordering::SeqCst);
            if idle.since.elapsed() > IDLE_LIMIT || idle.generation != generation {
                idle.client.quit().await;
                continue;
            }
            // Out of step (the server said more than it was asked) or
            // gone: dropped, the message gets a new connection.
            if idle.client.ready_for_next().await {
                return Some(idle);
            }
        }
    }

    /// Keeps a cleanly finished connection for the next message to the
    /// same server, or closes it when enough are kept already.
    pub(super) fn park(
        &self,
        key: &str,
        client: Client<Stream>,
        tls: String,
        channel: Channel,
        transit: (Method, &'static str),
    ) {
        let limit = self.limit.load(Ordering::SeqCst);
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let list = idle.entry(key.to_string()).or_default();
        if list.len() >= limit {
            drop(idle);
            tokio::spawn(client.quit());
            return;
        }
        list.push(Idle {
            client,
            tls,
            channel,
            transit,
            since: Instant::now(),
            generation: self.generation.load(Ordering::SeqCst),
        });
    }

    /// Closes (QUIT) the connections idle longer than the limit, so a
    /// server's session slots are not held for nothing, and forgets the
    /// semaphores no attempt holds or waits for.
    pub(super) fn sweep(&self) {
        self.close_idle(|idle| idle.since.elapsed() > IDLE_LIMIT);
        if let Ok(mut map) = self.destinations.lock() {
            // Only the map holds it: no permit out, nobody waiting.
            map.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
        }
    }

    /// A reload: the idle connections were opened and verified under
    /// settings no longer in force; none is used again. Each is closed by
    /// the next attempt to its server (holding the slot), or by the sweep.
    pub(super) fn renew(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn close_idle(&self, stale: impl Fn(&Idle) -> bool) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let mut closing = Vec::new();
        for list in idle.values_mut() {
            let (old, fresh): (Vec<Idle>, Vec<Idle>) = list.drain(..).partition(&stale);
            *list = fresh;
            closing.extend(old);
        }
        idle.retain(|_, list| !list.is_empty());
        drop(idle);
        for old in closing {
            tokio::spawn(old.client.quit());
        }
    }
}
