//! The queue: what is kept of every accepted message.

pub mod admin;
pub mod bulk;
pub mod control;
pub mod delivery;
pub mod dsn;
pub mod envelope;
pub mod finish;
pub mod handle;
pub mod manager;
pub mod modes;
pub mod schedule;
pub mod spool;
pub mod state;
