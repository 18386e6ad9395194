//! The inbound side: who may connect and what they may send.
//!
//! * [`policy`]: inbound connector matching and relay control;
//! * [`session`] with `commands` and `received`: the SMTP session as a
//!   pure state machine (bytes in, replies + content + an action out).

mod commands;
pub mod policy;
mod received;
pub mod session;

pub use received::rfc5322_date;
