//! The queue: what is kept of every accepted message.

pub mod envelope;
pub mod spool;
