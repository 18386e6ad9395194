//! The inbound side: listeners, sessions, and who may send what.
//!
//! * [`listener`]: accept loops, connection limits, graceful stop;
//! * `connection` with `data_clock`: the I/O driver of one session
//!   (timeouts, STARTTLS, spool writes);
//! * [`session`] with `commands`, `content`, `received` and `output`: the SMTP
//!   session as a pure state machine (bytes in, replies + content + an
//!   action out);
//! * [`policy`]: inbound connector matching and relay control;
//! * [`flow`]: inbound flow control (slower replies, then `452`, when
//!   delivery cannot keep up).

mod commands;
mod connection;
mod content;
mod data_clock;
pub mod flow;
pub mod listener;
mod output;
pub mod policy;
mod received;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::queue::spool::Spool;
use crate::tls::server::ServerTls;

/// What every session of a server shares.
pub struct ServerState {
    pub policy: Arc<policy::InboundPolicy>,
    /// `None` when no certificate is configured: STARTTLS is not offered.
    pub tls: Option<ServerTls>,
    pub spool: Spool,
    pub timeouts: Timeouts,
    /// For clients' reverse names; `None` when turned off or unavailable.
    pub dns: Option<crate::dns::Dns>,
    /// Tells the queue manager about each message committed.
    pub queue: crate::queue::handle::QueueHandle,
}

/// The per-phase deadlines of a session (RFC 5321 §4.5.3.2).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub command: Duration,
    pub data: Duration,
    /// Bytes per second.
    pub min_data_rate: u64,
    pub tls_handshake: Duration,
}

impl Timeouts {
    pub fn new(config: &Config) -> Self {
        let server = &config.server;
        Timeouts {
            command: server.command_timeout.0,
            data: server.data_timeout.0,
            min_data_rate: server.min_data_rate.0,
            tls_handshake: server.tls_handshake_timeout.0,
        }
    }
}
