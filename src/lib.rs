//! tlsrelay: an SMTP relay whose whole point is protecting mail in transit.
//!
//! # Architecture
//!
//! ```text
//!   clients ──SMTP/STARTTLS──▶ inbound ──▶ queue (spool, fsync before 250)
//!                                                │
//!                        outbound (route → client → TLS ladder/policy) ──▶ next hop
//! ```
//!
//! Everything a user configures arrives through [`config`], which turns one
//! TOML file into validated types, or into `file:line:col` errors. The TLS
//! pieces that both directions share (certificate loading, trust stores,
//! inspection for `cert-info`, self-signed generation) live in [`tls`].
//! [`smtp`] holds sans-IO protocol pieces with no tokio in them.
//!
//! # Module map
//!
//! * [`config`]: TOML → [`config::Config`], validation, `check-config` summary.
//! * [`daemon`]: `serve`, the pieces wired together.
//! * [`inbound`]: listeners, the SMTP session, connectors and relay control.
//! * [`queue`]: the envelope, the durable spool, the queue manager, DSNs,
//!   and `tlsrelay queue` (over the control socket).
//! * [`metrics`]: Prometheus counters and the `/metrics` endpoint.
//! * [`log_sink`]: the log's way out, which drops lines rather than block.
//! * [`https`]: the HTTPS client of the MTA-STS policy fetch and TLS-RPT.
//! * [`mta_sts`]: MTA-STS (RFC 8461): TXT record, policy, disk cache, lookup.
//! * [`tls`]: certificates and keys, trust anchors, `cert-info`, `gen-cert`.
//! * [`smtp`]: sans-IO reply reading (bounded, any chunking), used by
//!   `cert-info --connect --starttls` and later by the outbound client.

pub mod config;
pub mod current;
pub mod daemon;
pub mod dns;
pub mod https;
pub mod inbound;
pub mod log_sink;
pub mod metrics;
pub mod mta_sts;
pub mod net;
pub mod notify;
pub mod outbound;
pub mod preflight;
pub mod queue;
pub mod random;
pub mod smtp;
pub mod tls;
pub mod tls_rpt;
pub mod transit;
