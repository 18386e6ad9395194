//! MTA-STS (RFC 8461), the sending side: is there a policy for a domain,
//! and what is it. The delivery (`crate::outbound`) applies what this
//! finds; the policy cache lives on disk ([`cache`]), so it outlives
//! reloads and restarts without any state in memory.
//!
//! * [`record`]: the `_mta-sts` TXT record (discovery, RFC 8461 §3.1);
//! * [`policy`]: the policy file (§3.2) and MX matching (§4.1);
//! * [`cache`]: `SPOOL_DIR/mta-sts/`, one file per domain (§5);
//! * [`lookup`]: the §5.1 logic: the cache while its id holds, a refetch
//!   when the id changes or half the policy's life is gone, and the
//!   unexpired cached policy kept when a refetch or the TXT lookup fails.

pub mod cache;
pub mod lookup;
pub mod policy;
pub mod record;

use std::future::Future;
use std::net::IpAddr;

pub use lookup::{Lookup, Outcome};
pub use policy::{Mode, Policy};

/// The DNS questions MTA-STS asks, answered by the relay's resolver
/// (`crate::outbound` implements this over its `Resolve`). Errors are
/// the resolver's words.
pub trait Dns: Send + Sync {
    /// TXT records at `name`, each one's strings joined; empty: none.
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<String>, String>> + Send;
    fn addresses(&self, host: &str) -> impl Future<Output = Result<Vec<IpAddr>, String>> + Send;
}

/// The largest policy file read (RFC 8461 §3.3 suggests 64 KiB).
pub const BODY_CAP: usize = 64 * 1024;
