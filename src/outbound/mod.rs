//! The outbound side: where mail goes and how it gets there.
//!
//! * [`route`]: outbound connector by recipient domain, then smarthosts or
//!   MX hosts (behind the [`route::Resolve`] trait);
//! * [`client`]: the SMTP client over any stream, STARTTLS as a change of
//!   type, pipelining, DSN parameters, per-phase deadlines;
//! * [`deliver`]: one attempt: group by domain, route, hosts in turn, TLS
//!   as the policy says, one log line per attempt;
//! * [`memory`]: broken-TLS memory, the rungs confirmed broken per server
//!   (the rule), kept in a file by [`memory_file`], listed and cleared
//!   by `tlsrelay tls-memory` ([`memory_admin`]);
//! * [`outcome`]: replies and errors → delivered, deferred or failed;
//! * [`policy`]: the TLS decision of DESIGN.md §5 as pure functions;
//! * [`probe`]: `tlsrelay probe`, the same steps reported instead of taken;
//! * `queue_delivery`: the queue's `Delivery` trait, implemented by the
//!   deliverer.

pub mod client;
pub mod deliver;
pub mod memory;
pub mod memory_admin;
pub mod memory_file;
pub mod outcome;
pub mod policy;
pub mod probe;
mod queue_delivery;
pub mod route;
