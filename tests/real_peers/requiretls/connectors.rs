//! Cells whose hops are an `[[outbound]]` connector's smarthosts: the
//! hop is authenticated by the operator's own configuration, so what is
//! left to prove is the certificate, the STARTTLS and the REQUIRETLS of
//! the server. Connectors at the default level (opportunistic) show that
//! a flagged message climbs as `verify-host` against the connector's
//! `ca_file`: no plaintext rung, no unverified certificate.

use super::cells::{Cell, Expect, Flag, DEFAULT, OFF, VERIFY_HOST as VERIFY};
use super::lab::Hop::{Plain, Postfix, Rt, RtSelfSigned, Strip};

const RETURNED: Expect = Expect::Returned {
    connected: Some(true),
};

#[rustfmt::skip]
pub const CELLS: [Cell; 9] = [
    // 1 (a): verified, REQUIRETLS offered: delivered with the parameter.
    Cell { name: "c-rt", route: VERIFY, hops: &[Rt], flag: Flag::Param,
        expect: Expect::Delivered { at: 0, tls: true, param: true }, word: "required" },
    // 2: verified, no REQUIRETLS (Postfix 3.7), the only hop: returned.
    Cell { name: "c-postfix", route: VERIFY, hops: &[Postfix], flag: Flag::Param,
        expect: RETURNED, word: "required" },
    // 3: the first hop without REQUIRETLS, the second with: the second.
    Cell { name: "c-twohops", route: VERIFY, hops: &[Postfix, Rt], flag: Flag::Param,
        expect: Expect::Delivered { at: 1, tls: true, param: true }, word: "required" },
    // 4: self-signed (REQUIRETLS offered all the same): returned.
    Cell { name: "c-selfsigned", route: DEFAULT, hops: &[RtSelfSigned], flag: Flag::Param,
        expect: RETURNED, word: "required" },
    // 5: no STARTTLS, REQUIRETLS claimed in plaintext: returned.
    Cell { name: "c-plain", route: DEFAULT, hops: &[Plain(true)], flag: Flag::Param,
        expect: RETURNED, word: "required" },
    // 6: STARTTLS stripped on the way to a REQUIRETLS server: returned.
    Cell { name: "c-strip", route: DEFAULT, hops: &[Strip], flag: Flag::Param,
        expect: RETURNED, word: "required" },
    // 9: `requiretls = "off"`, a plaintext-only hop: delivered in the
    // clear, no parameter (the server does not offer it).
    Cell { name: "c-off", route: OFF, hops: &[Plain(false)], flag: Flag::Param,
        expect: Expect::Delivered { at: 0, tls: false, param: false }, word: "off" },
    // 9: `off`, a self-signed hop that offers REQUIRETLS: delivered, the
    // parameter passed on.
    Cell { name: "c-off-offered", route: OFF, hops: &[RtSelfSigned], flag: Flag::Param,
        expect: Expect::Delivered { at: 0, tls: true, param: true }, word: "off" },
    // Unflagged to a plaintext-only hop: delivered as ever, `requiretls=-`.
    Cell { name: "c-unflagged", route: DEFAULT, hops: &[Plain(false)], flag: Flag::Unflagged,
        expect: Expect::Delivered { at: 0, tls: false, param: false }, word: "-" },
];

pub fn run() {
    super::run::with_test_dns(&CELLS, "REQUIRETLS over connectors");
}
