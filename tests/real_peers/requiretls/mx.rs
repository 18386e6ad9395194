//! Cells routed by MX (no connector) with the test DNS unsigned and no
//! DNSSEC: an MX host is authenticated only by an MTA-STS policy in
//! `enforce` mode that names it (the policy server of the MTA-STS lab);
//! without one, or under `testing`, a flagged message is returned
//! without a connection to the MX. `TLS-Required: No` lifts MTA-STS for
//! an unflagged message; the same message without the header waits for
//! MTA-STS as before.

use super::cells::{Cell, Expect, Flag, Route, ENFORCE, MX};
use super::lab::Hop::{Plain, Postfix, Rt};

#[rustfmt::skip]
pub const CELLS: [Cell; 7] = [
    // 1 (b): MTA-STS enforce names the MX, REQUIRETLS offered: delivered.
    Cell { name: "m-sts-rt", route: ENFORCE, hops: &[Rt], flag: Flag::Param,
        expect: Expect::Delivered { at: 0, tls: true, param: true }, word: "required" },
    // 2 under MTA-STS: verified, no REQUIRETLS: returned.
    Cell { name: "m-sts-postfix", route: ENFORCE, hops: &[Postfix], flag: Flag::Param,
        expect: Expect::Returned { connected: Some(true) }, word: "required" },
    // 3 under MTA-STS: the first MX without REQUIRETLS, the second with.
    Cell { name: "m-sts-twohops", route: ENFORCE, hops: &[Postfix, Rt], flag: Flag::Param,
        expect: Expect::Delivered { at: 1, tls: true, param: true }, word: "required" },
    // 7: no DNSSEC, no MTA-STS: returned, the MX never connected to.
    Cell { name: "m-plain", route: MX, hops: &[Rt], flag: Flag::Param,
        expect: Expect::Returned { connected: Some(false) }, word: "required" },
    // 7 with a policy in `testing` mode: it authenticates nothing.
    Cell { name: "m-testing", route: Route::Mx { sts: "testing", connector: false }, hops: &[Rt], flag: Flag::Param,
        expect: Expect::Returned { connected: Some(false) }, word: "required" },
    // 8: `TLS-Required: No`, enforce, the only MX plaintext-only: delivered.
    Cell { name: "m-lifted", route: ENFORCE, hops: &[Plain(false)], flag: Flag::Header,
        expect: Expect::Delivered { at: 0, tls: false, param: false }, word: "lifted" },
    // 8's control: the same without the header waits for MTA-STS.
    Cell { name: "m-enforced", route: ENFORCE, hops: &[Plain(false)], flag: Flag::Unflagged,
        expect: Expect::Deferred, word: "-" },
];

pub fn run() {
    super::run::with_test_dns(&CELLS, "REQUIRETLS over MX routing");
}
