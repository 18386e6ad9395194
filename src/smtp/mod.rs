//! Sans-IO SMTP pieces (no tokio here).
