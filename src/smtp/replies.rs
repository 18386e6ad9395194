//! Every reply our SMTP server sends, in one table: code, enhanced status
//! (RFC 3463, advertised as ENHANCEDSTATUSCODES, RFC 2034) and text.
//!
//! The inbound session names these instead of writing codes where it
//! refuses, so one reply has one spelling, the enhanced status always
//! agrees with the code's class (RFC 2034 §4: the class is the code's
//! first digit, which [`ServerReply`]'s constructor takes from the code),
//! and a reader finds every answer an administrator may see in a log here.
//! Replies whose text carries a value (a size, a queue id, a host name)
//! are functions over a constant of the table.

use std::borrow::Cow;
use std::fmt;

use super::status::{Class, EnhancedStatus};

/// One reply line as the server sends it, without its CRLF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    /// `None` only for the replies RFC 2034 §3 leaves without one: the
    /// greeting, `354` and the answer to HELO.
    pub status: Option<EnhancedStatus>,
    pub text: Cow<'static, str>,
}

impl ServerReply {
    /// `code subject.detail text`, the class taken from the code (only
    /// evaluated in constants: a wrong entry fails the build).
    const fn new(code: u16, subject: u16, detail: u16, text: &'static str) -> ServerReply {
        let class = match code / 100 {
            2 => Class::Success,
            4 => Class::Transient,
            5 => Class::Permanent,
            _ => panic!("an enhanced status needs a 2xx, 4xx or 5xx code"),
        };
        let Some(status) = EnhancedStatus::new(class, subject, detail) else {
            panic!("subject and detail have at most three digits");
        };
        ServerReply {
            code,
            status: Some(status),
            text: Cow::Borrowed(text),
        }
    }

    /// A reply without an enhanced status code.
    const fn bare(code: u16, text: &'static str) -> ServerReply {
        ServerReply {
            code,
            status: None,
            text: Cow::Borrowed(text),
        }
    }

    /// The same code and status with `text`.
    fn saying(&self, text: String) -> ServerReply {
        ServerReply {
            text: Cow::Owned(text),
            ..self.clone()
        }
    }

    /// A `421` (or any reply that ends the session) with our host name
    /// first in its text, as RFC 5321 §3.8 and §4.2 write it
    /// (`421 4.x.x relay.example.test …`).
    pub fn from_host(&self, hostname: &str) -> ServerReply {
        self.saying(format!("{hostname} {}", self.text))
    }

    /// `4xx` or `5xx`: the command was refused.
    pub fn is_refusal(&self) -> bool {
        self.code >= 400
    }
}

impl fmt::Display for ServerReply {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} {status} {}", self.code, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

// Success.
pub const OK: ServerReply = ServerReply::new(250, 0, 0, "Ok");
/// MAIL accepted (RFC 3463 X.1.0, "other address status").
pub const SENDER_OK: ServerReply = ServerReply::new(250, 1, 0, "Ok");
/// RCPT accepted (X.1.5, "destination address valid").
pub const RECIPIENT_OK: ServerReply = ServerReply::new(250, 1, 5, "Ok");
pub const BYE: ServerReply = ServerReply::new(221, 0, 0, "Bye");
pub const HELP: ServerReply = ServerReply::new(
    214,
    0,
    0,
    "See RFC 5321; commands: EHLO HELO STARTTLS MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT",
);
/// RFC 5321 §3.5.3: VRFY is answered without looking anyone up.
pub const CANNOT_VRFY: ServerReply = ServerReply::new(
    252,
    5,
    0,
    "Cannot VRFY user, but will accept message and attempt delivery",
);
pub const READY_FOR_TLS: ServerReply = ServerReply::new(220, 0, 0, "Ready to start TLS");
pub const START_DATA: ServerReply = ServerReply::bare(354, "End data with <CR><LF>.<CR><LF>");
const QUEUED: ServerReply = ServerReply::new(250, 0, 0, "");
const CHUNK_RECEIVED: ServerReply = ServerReply::new(250, 0, 0, "");

/// The `220` banner.
pub fn greeting(hostname: &str) -> ServerReply {
    ServerReply::bare(220, "").saying(format!("{hostname} ESMTP tlsrelay"))
}

/// The answer to HELO (no enhanced code: the client did not ask for ESMTP).
pub fn helo(hostname: &str, client: &str) -> ServerReply {
    ServerReply::bare(250, "").saying(greets(hostname, client))
}

/// Where the session stands on TLS, which decides the EHLO's last keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EhloTls {
    /// Plaintext, a certificate loaded: `STARTTLS` is offered.
    Available,
    /// Plaintext, no certificate: neither keyword.
    Unavailable,
    /// After STARTTLS or on an implicit-TLS listener: `REQUIRETLS`
    /// (RFC 8689 §4.1 offers it only on a TLS session).
    Active,
}

/// The answer to EHLO (RFC 5321 §4.1.1.1), every line with its CRLF:
/// the greeting, then the extensions we offer, `SIZE` with our limit
/// (RFC 1870), `STARTTLS` while it can still be used (RFC 3207 §4.2) and
/// `REQUIRETLS` once TLS is up.
pub fn ehlo(hostname: &str, client: &str, max_size: u64, tls: EhloTls) -> String {
    let mut lines = vec![
        greets(hostname, client),
        "PIPELINING".to_string(),
        format!("SIZE {max_size}"),
        "8BITMIME".to_string(),
        "ENHANCEDSTATUSCODES".to_string(),
        "SMTPUTF8".to_string(),
        "CHUNKING".to_string(),
        "DSN".to_string(),
    ];
    match tls {
        EhloTls::Available => lines.push("STARTTLS".to_string()),
        EhloTls::Unavailable => {}
        EhloTls::Active => lines.push("REQUIRETLS".to_string()),
    }
    let last = lines.len() - 1;
    let mut reply = String::new();
    for (i, line) in lines.iter().enumerate() {
        let separator = if i == last { ' ' } else { '-' };
        reply.push_str(&format!("250{separator}{line}\r\n"));
    }
    reply
}

/// The first line of the answer to EHLO and HELO.
fn greets(hostname: &str, client: &str) -> String {
    format!("{hostname} greets {client}")
}

/// The message is on disk under queue id `id`.
pub fn queued(id: &str) -> ServerReply {
    QUEUED.saying(format!("Ok: queued as {id}"))
}

/// A BDAT chunk other than the last is in.
pub fn chunk_received(size: u64) -> ServerReply {
    CHUNK_RECEIVED.saying(format!("{size} octets received"))
}

// The session ends: sent `from_host`.
pub const SHUTTING_DOWN: ServerReply = ServerReply::new(
    421,
    3,
    2,
    "Service shutting down, closing transmission channel",
);
pub const TIMEOUT: ServerReply = ServerReply::new(421, 4, 2, "Error: timeout exceeded");
pub const TOO_SLOW: ServerReply = ServerReply::new(421, 4, 2, "Data rate too slow; closing");
pub const TOO_MANY_ERRORS: ServerReply = ServerReply::new(421, 7, 0, "Too many errors; closing");

// Temporary refusals.
pub const TLS_NOT_AVAILABLE: ServerReply = ServerReply::new(454, 7, 0, "TLS not available");
pub const TOO_MANY_RECIPIENTS: ServerReply = ServerReply::new(452, 5, 3, "Too many recipients");
pub const LOCAL_ERROR: ServerReply = ServerReply::new(451, 3, 0, "Local error in processing");
pub const NO_SPACE: ServerReply = ServerReply::new(452, 3, 1, "Insufficient system storage");
/// Inbound flow control: delivery is behind by `[queue] backlog_limit`.
pub const BACKLOG: ServerReply = ServerReply::new(
    452,
    3,
    1,
    "Too much mail is waiting for delivery; try again later",
);

// Command syntax.
pub const UNRECOGNIZED: ServerReply =
    ServerReply::new(500, 5, 2, "Syntax error, command unrecognized");
pub const SYNTAX_ERROR: ServerReply = ServerReply::new(500, 5, 2, "Syntax error");
pub const LINE_TOO_LONG: ServerReply = ServerReply::new(500, 5, 2, "Line too long");
pub const NUL_IN_COMMAND: ServerReply = ServerReply::new(500, 5, 2, "NUL character in command");
pub const INVALID_UTF8: ServerReply = ServerReply::new(500, 5, 2, "Invalid UTF-8 in command");
pub const NOT_IMPLEMENTED: ServerReply = ServerReply::new(502, 5, 1, "Command not implemented");
pub const BDAT_SYNTAX: ServerReply = ServerReply::new(501, 5, 4, "Syntax: BDAT chunk-size [LAST]");
const ARGUMENT_SYNTAX: ServerReply = ServerReply::new(501, 5, 4, "");
const UNSUPPORTED_PARAMETER: ServerReply = ServerReply::new(555, 5, 4, "");

/// `Syntax: …`, what smtp-proto says the command should look like.
pub fn syntax(usage: &str) -> ServerReply {
    ARGUMENT_SYNTAX.saying(format!("Syntax: {usage}"))
}

/// A MAIL or RCPT parameter with a bad value.
pub fn invalid_parameter(param: &str) -> ServerReply {
    ARGUMENT_SYNTAX.saying(format!("Invalid {param} parameter"))
}

/// A MAIL or RCPT parameter we do not know (RFC 5321 §4.1.1.11: 555).
pub fn unsupported_parameter(param: &str) -> ServerReply {
    UNSUPPORTED_PARAMETER.saying(format!("Unsupported parameter {param}"))
}

// Command sequence.
pub const TLS_ALREADY_ACTIVE: ServerReply = ServerReply::new(503, 5, 1, "TLS already active");
pub const EHLO_FIRST: ServerReply = ServerReply::new(503, 5, 1, "Send EHLO first");
pub const HELO_FIRST: ServerReply = ServerReply::new(503, 5, 1, "Send HELO/EHLO first");
pub const NESTED_MAIL: ServerReply = ServerReply::new(503, 5, 1, "Nested MAIL command");
pub const MAIL_BEFORE_RCPT: ServerReply = ServerReply::new(503, 5, 1, "Need MAIL before RCPT");
pub const NEED_MAIL: ServerReply = ServerReply::new(503, 5, 1, "Need MAIL command");
pub const NO_RECIPIENTS: ServerReply = ServerReply::new(554, 5, 1, "No valid recipients");
pub const DATA_AFTER_BDAT: ServerReply = ServerReply::new(503, 5, 1, "DATA after BDAT");
pub const STARTTLS_FIRST: ServerReply =
    ServerReply::new(530, 7, 0, "Must issue a STARTTLS command first");
/// `MAIL … REQUIRETLS` on a session without TLS (RFC 8689 §4.1 offers the
/// option only under TLS; 5.7.10 "encryption needed", RFC 5248).
pub const REQUIRETLS_NEEDS_TLS: ServerReply = ServerReply::new(
    530,
    7,
    10,
    "REQUIRETLS needs a TLS session: issue STARTTLS first",
);

// Addresses and policy.
pub const BINARYMIME: ServerReply = ServerReply::new(555, 5, 4, "BODY=BINARYMIME is not supported");
pub const SENDER_NOT_PERMITTED: ServerReply = ServerReply::new(
    550,
    7,
    1,
    "Sender domain not permitted through this connection",
);
pub const RELAYING_DENIED: ServerReply = ServerReply::new(550, 7, 1, "Relaying denied");
pub const NO_POSTMASTER: ServerReply = ServerReply::new(
    550,
    1,
    1,
    "No postmaster here; write to postmaster@ a domain",
);

/// Which address of the envelope a refusal is about; it sets the
/// enhanced status (RFC 3463 X.1.7 for the sender, X.1.3 for a recipient).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Sender,
    Recipient,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Sender => "sender",
            Role::Recipient => "recipient",
        }
    }

    /// `501 5.1.7 Bad sender address syntax`, `501 5.1.3 Bad recipient …`.
    pub fn bad_syntax(self) -> ServerReply {
        match self {
            Role::Sender => BAD_SENDER,
            Role::Recipient => BAD_RECIPIENT,
        }
    }

    /// The address is wrong in the way `text` says (a `501`).
    pub fn bad_address(self, text: String) -> ServerReply {
        self.bad_syntax().saying(text)
    }

    /// `553` with this role's status: an internationalised domain with no
    /// A-label form (UTS #46), so no such name exists in DNS.
    pub fn unmappable_domain(self) -> ServerReply {
        let reply = match self {
            Role::Sender => UNMAPPABLE_SENDER,
            Role::Recipient => UNMAPPABLE_RECIPIENT,
        };
        reply.saying(format!(
            "The {} domain has no IDNA 2008 A-label form (UTS #46)",
            self.name()
        ))
    }

    /// `553 5.6.7`: a non-ASCII address without SMTPUTF8 (RFC 6531 §3.4).
    pub fn needs_smtputf8(self) -> ServerReply {
        match self {
            Role::Sender => NON_ASCII_SENDER,
            Role::Recipient => NON_ASCII_RECIPIENT,
        }
    }
}

const BAD_SENDER: ServerReply = ServerReply::new(501, 1, 7, "Bad sender address syntax");
const BAD_RECIPIENT: ServerReply = ServerReply::new(501, 1, 3, "Bad recipient address syntax");
const UNMAPPABLE_SENDER: ServerReply = ServerReply::new(553, 1, 7, "");
const UNMAPPABLE_RECIPIENT: ServerReply = ServerReply::new(553, 1, 3, "");
const NON_ASCII_SENDER: ServerReply =
    ServerReply::new(553, 6, 7, "Non-ASCII sender address needs SMTPUTF8");
const NON_ASCII_RECIPIENT: ServerReply =
    ServerReply::new(553, 6, 7, "Non-ASCII recipient address needs SMTPUTF8");

// Message content.
pub const TOO_LARGE: ServerReply =
    ServerReply::new(552, 3, 4, "Message size exceeds fixed maximum message size");
pub const NUL_IN_CONTENT: ServerReply =
    ServerReply::new(554, 6, 0, "NUL character in message content is not allowed");
pub const TOO_MANY_HOPS: ServerReply = ServerReply::new(554, 4, 6, "Too many hops (mail loop?)");
/// Under `bare_lf = "reject"`; the session ends with it.
pub const BARE_LINE_ENDING: ServerReply = ServerReply::new(
    521,
    5,
    2,
    "Bare LF or CR in message content violates RFC 5321 §2.3.8; closing",
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reply exactly as the session sent it before this table
    /// existed: clients and tests match on these bytes.
    #[test]
    fn the_wire_lines_are_those_sent_before() {
        let table = [
            (OK, "250 2.0.0 Ok"),
            (SENDER_OK, "250 2.1.0 Ok"),
            (RECIPIENT_OK, "250 2.1.5 Ok"),
            (BYE, "221 2.0.0 Bye"),
            (HELP, "214 2.0.0 See RFC 5321; commands: EHLO HELO STARTTLS MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT"),
            (CANNOT_VRFY, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"),
            (READY_FOR_TLS, "220 2.0.0 Ready to start TLS"),
            (START_DATA, "354 End data with <CR><LF>.<CR><LF>"),
            (SHUTTING_DOWN, "421 4.3.2 Service shutting down, closing transmission channel"),
            (TIMEOUT, "421 4.4.2 Error: timeout exceeded"),
            (
                TIMEOUT.from_host("relay.example.test"),
                "421 4.4.2 relay.example.test Error: timeout exceeded",
            ),
            (TOO_SLOW, "421 4.4.2 Data rate too slow; closing"),
            (TOO_MANY_ERRORS, "421 4.7.0 Too many errors; closing"),
            (TLS_NOT_AVAILABLE, "454 4.7.0 TLS not available"),
            (TOO_MANY_RECIPIENTS, "452 4.5.3 Too many recipients"),
            (LOCAL_ERROR, "451 4.3.0 Local error in processing"),
            (NO_SPACE, "452 4.3.1 Insufficient system storage"),
            (
                BACKLOG,
                "452 4.3.1 Too much mail is waiting for delivery; try again later",
            ),
            (UNRECOGNIZED, "500 5.5.2 Syntax error, command unrecognized"),
            (SYNTAX_ERROR, "500 5.5.2 Syntax error"),
            (LINE_TOO_LONG, "500 5.5.2 Line too long"),
            (NUL_IN_COMMAND, "500 5.5.2 NUL character in command"),
            (INVALID_UTF8, "500 5.5.2 Invalid UTF-8 in command"),
            (NOT_IMPLEMENTED, "502 5.5.1 Command not implemented"),
            (BDAT_SYNTAX, "501 5.5.4 Syntax: BDAT chunk-size [LAST]"),
            (TLS_ALREADY_ACTIVE, "503 5.5.1 TLS already active"),
            (EHLO_FIRST, "503 5.5.1 Send EHLO first"),
            (HELO_FIRST, "503 5.5.1 Send HELO/EHLO first"),
            (NESTED_MAIL, "503 5.5.1 Nested MAIL command"),
            (MAIL_BEFORE_RCPT, "503 5.5.1 Need MAIL before RCPT"),
            (NEED_MAIL, "503 5.5.1 Need MAIL command"),
            (NO_RECIPIENTS, "554 5.5.1 No valid recipients"),
            (DATA_AFTER_BDAT, "503 5.5.1 DATA after BDAT"),
            (STARTTLS_FIRST, "530 5.7.0 Must issue a STARTTLS command first"),
            (BINARYMIME, "555 5.5.4 BODY=BINARYMIME is not supported"),
            (SENDER_NOT_PERMITTED, "550 5.7.1 Sender domain not permitted through this connection"),
            (RELAYING_DENIED, "550 5.7.1 Relaying denied"),
            (NO_POSTMASTER, "550 5.1.1 No postmaster here; write to postmaster@ a domain"),
            (TOO_LARGE, "552 5.3.4 Message size exceeds fixed maximum message size"),
            (NUL_IN_CONTENT, "554 5.6.0 NUL character in message content is not allowed"),
            (TOO_MANY_HOPS, "554 5.4.6 Too many hops (mail loop?)"),
            (BARE_LINE_ENDING, "521 5.5.2 Bare LF or CR in message content violates RFC 5321 §2.3.8; closing"),
            (Role::Sender.bad_syntax(), "501 5.1.7 Bad sender address syntax"),
            (Role::Recipient.bad_syntax(), "501 5.1.3 Bad recipient address syntax"),
            (Role::Sender.needs_smtputf8(), "553 5.6.7 Non-ASCII sender address needs SMTPUTF8"),
            (Role::Recipient.needs_smtputf8(), "553 5.6.7 Non-ASCII recipient address needs SMTPUTF8"),
            (Role::Sender.unmappable_domain(), "553 5.1.7 The sender domain has no IDNA 2008 A-label form (UTS #46)"),
            (Role::Recipient.bad_address("Bad address literal: x".into()), "501 5.1.3 Bad address literal: x"),
            (syntax("EHLO hostname"), "501 5.5.4 Syntax: EHLO hostname"),
            (invalid_parameter("SIZE"), "501 5.5.4 Invalid SIZE parameter"),
            (unsupported_parameter("FOO"), "555 5.5.4 Unsupported parameter FOO"),
            (chunk_received(5), "250 2.0.0 5 octets received"),
            (queued("ABC"), "250 2.0.0 Ok: queued as ABC"),
            (greeting("relay.example.test"), "220 relay.example.test ESMTP tlsrelay"),
            (helo("relay.example.test", "client.test"), "250 relay.example.test greets client.test"),
        ];
        for (reply, line) in table {
            assert_eq!(reply.to_string(), line);
            assert_eq!(reply.is_refusal(), line.starts_with(['4', '5']), "{line}");
        }
        assert_eq!(
            ehlo(
                "relay.example.test",
                "client.test",
                1024,
                EhloTls::Available
            ),
            "250-relay.example.test greets client.test\r\n250-PIPELINING\r\n250-SIZE 1024\r\n\
             250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n\
             250-DSN\r\n250 STARTTLS\r\n"
        );
        assert!(ehlo("h", "c", 1, EhloTls::Unavailable).ends_with("\r\n250 DSN\r\n"));
        assert!(ehlo("h", "c", 1, EhloTls::Active).ends_with("\r\n250-DSN\r\n250 REQUIRETLS\r\n"));
    }
}
