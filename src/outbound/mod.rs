//! The outbound side: where mail goes and how it gets there.
//!
//! * [`route`]: outbound connector by recipient domain, then smarthosts or
//!   MX hosts (behind the [`route::Resolve`] trait).

pub mod route;
