//! Sans-IO SMTP pieces (no tokio here): the DATA and BDAT receivers for
//! the server side, address-literal masking for the command parser, the
//! reply reader for the client side, enhanced status codes, and the
//! table of replies our server sends.

pub mod data;
pub mod literal;
pub mod replies;
pub mod reply;
pub mod status;
pub mod stuff;
