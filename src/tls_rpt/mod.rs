//! Sending TLS-RPT aggregate reports (RFC 8460): each UTC day's counts
//! (kept by [`crate::transit`]) go, after the day ends, to every `rua`
//! URI the policy domain publishes in `_smtp._tls` TXT: `https:` by POST,
//! `mailto:` as a report mail through our own queue.
//!
//! * [`record`]: the `_smtp._tls` record and its URIs;
//! * [`mail`]: the report as mail (and the gzip both ways share);
//! * [`schedule`]: when each report is due, retries, what is left;
//! * [`send`]: the sender, behind the [`send::Outside`] trait;
//! * [`relay`]: that trait in the running relay (transit files, DNS,
//!   HTTPS, our queue); [`run`]: the task and its clock;
//! * [`queue_mail`]: report mail into our own queue.

pub mod mail;
pub mod queue_mail;
pub mod record;
pub mod relay;
pub mod run;
pub mod schedule;
pub mod send;
