//! Sans-IO SMTP pieces (no tokio here): the DATA receiver and reply parsing.

pub mod data;
