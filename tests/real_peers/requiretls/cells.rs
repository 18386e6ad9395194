//! What a cell is: one recipient domain, the hops that serve it and how
//! the relay reaches them, the message sent (flagged or not) and what
//! must come of it. One sender per cell (`NAME@sender.test`), so each
//! returned message's notice is told apart at the sender's receiver.

use super::lab::Hop;

/// How the relay reaches a cell's hops.
#[derive(Clone, Copy, Debug)]
pub enum Route {
    /// An `[[outbound]]` connector with the hops as `smarthosts`, in
    /// order, `ca_file` the lab CA; `tls` its level ("": the default,
    /// opportunistic), `off`: `requiretls = "off"`.
    Connector { tls: &'static str, off: bool },
    /// MX routing: hop `i` is MX `10 * (i + 1)`; an MTA-STS policy of
    /// `sts` (`enforce`, `testing`; "": no policy) names every host.
    /// `connector`: through a connector without smarthosts whose
    /// `ca_file` is the lab CA; else no connector at all.
    Mx { sts: &'static str, connector: bool },
}

/// A `verify-host` connector.
pub const VERIFY_HOST: Route = Route::Connector {
    tls: "verify-host",
    off: false,
};
/// A connector at the default level (opportunistic).
pub const DEFAULT: Route = Route::Connector {
    tls: "",
    off: false,
};
/// A connector at the default level with `requiretls = "off"`.
pub const OFF: Route = Route::Connector { tls: "", off: true };
/// MX routing under an MTA-STS `enforce` policy.
pub const ENFORCE: Route = Route::Mx {
    sts: "enforce",
    connector: false,
};
/// MX routing, no policy, no connector.
pub const MX: Route = Route::Mx {
    sts: "",
    connector: false,
};

/// What the message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// `MAIL FROM:<…> REQUIRETLS` (smtplib's `mail_options`).
    Param,
    /// No parameter, a `TLS-Required: No` header (RFC 8689 §5).
    Header,
    /// Neither.
    Unflagged,
}

/// What must come of the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Stored by hop `at` only, over TLS or not, with or without the
    /// REQUIRETLS parameter on MAIL.
    Delivered { at: usize, tls: bool, param: bool },
    /// Returned at the first attempt with 5.7.30 and a notice to the
    /// sender, no mail command at any hop; `connected`: `Some(true)` the
    /// hops were tried, `Some(false)` not one connection was made,
    /// `None` either.
    Returned { connected: Option<bool> },
    /// Still queued, deferred with a 4.7.x status (today's MTA-STS).
    Deferred,
}

pub struct Cell {
    pub name: &'static str,
    pub route: Route,
    pub hops: &'static [Hop],
    pub flag: Flag,
    pub expect: Expect,
    /// The `requiretls=` word of every `delivery attempt` line.
    pub word: &'static str,
}

impl Cell {
    pub fn domain(&self) -> String {
        format!("{}.test", self.name)
    }

    pub fn host(&self, i: usize) -> String {
        format!("mx{i}.{}", self.domain())
    }

    pub fn sender(&self) -> String {
        format!("{}@sender.test", self.name)
    }

    pub fn recipient(&self) -> String {
        format!("rcpt@{}", self.domain())
    }

    pub fn message_id(&self) -> String {
        format!("<{}@requiretls.test>", self.name)
    }

    /// The body text: in the clear nowhere, and never in a notice.
    pub fn secret(&self) -> String {
        format!(
            "the body of requiretls cell {}, for its recipient alone.",
            self.name
        )
    }

    pub fn content(&self) -> String {
        let lifted = match self.flag {
            Flag::Header => "TLS-Required: No\r\n",
            _ => "",
        };
        format!(
            "From: {from}\r\nTo: {to}\r\nSubject: requiretls cell {name}\r\n\
             Message-ID: {id}\r\n{lifted}\r\n{secret}\r\n",
            from = self.sender(),
            to = self.recipient(),
            name = self.name,
            id = self.message_id(),
            secret = self.secret(),
        )
    }

    pub fn returned(&self) -> bool {
        matches!(self.expect, Expect::Returned { .. })
    }
}

/// Every address of a lab with `n` hops (the sender's receiver first).
pub fn addresses(cells: &[Cell]) -> Vec<String> {
    let n = 1 + cells.iter().map(|c| c.hops.len()).sum::<usize>();
    crate::mta_sts::lab_addresses(n)
}
