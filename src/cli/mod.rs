//! The `tlsrelay` binary's own modules: the command line ([`args`]), the
//! administrator's commands ([`admin`]) and how a command ends ([`exit`]).
//! `serve` itself is the library's `daemon`, started from `main.rs`.

pub mod admin;
pub mod args;
pub mod exit;
pub mod transit;
