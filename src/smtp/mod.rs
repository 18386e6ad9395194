//! Sans-IO SMTP pieces (no tokio here).
pub mod reply;
