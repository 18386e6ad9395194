//! Sans-IO SMTP pieces (no tokio here): the DATA and BDAT receivers for
//! the server side, address-literal masking for the command parser, the
//! reply reader for the client side, the date format of mail headers,
//! enhanced status codes, and the table of replies our server sends.

pub mod bare_lf;
pub mod data;
pub mod date;
pub mod literal;
pub mod replies;
pub mod reply;
pub mod status;
pub mod stuff;
