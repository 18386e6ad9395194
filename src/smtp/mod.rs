//! Sans-IO SMTP pieces (no tokio here): the DATA and BDAT receivers for
//! the server side, the reply reader for the client side.

pub mod data;
pub mod reply;
pub mod stuff;
