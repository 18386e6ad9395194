//! Cells routed by MX through a DNSSEC-signed tree (nsd, the DANE lab's
//! `SignedDns`) with validation on: a secure MX answer authenticates the
//! host; the certificate is verified by DANE (`3 1 1`) or, without TLSA
//! records, as `verify-host` against a connector's `ca_file`. An
//! insecure zone authenticates nothing, and DANE with no usable TLSA
//! record (encrypt-only) verifies nothing.

use super::cells::{Cell, Expect, Flag, Route, MX};
use super::lab::Hop::{Rt, RtSelfSigned, RtSilent};
use super::run::{send_and_settle, Lab, HOME};
use crate::support::signed_dns::{Kind, SignedDns};
use crate::support::tls_receiver::tlsa_3_1_1;

const MX_CA: Route = Route::Mx {
    sts: "",
    connector: true,
};

#[rustfmt::skip]
pub const CELLS: [Cell; 5] = [
    // 1 (c): secure MX, `3 1 1` of the server's key, REQUIRETLS offered.
    Cell { name: "d-dane", route: MX, hops: &[RtSelfSigned], flag: Flag::Param,
        expect: Expect::Delivered { at: 0, tls: true, param: true }, word: "required" },
    // 2 under DANE: verified by its TLSA record, no REQUIRETLS: returned.
    Cell { name: "d-silent", route: MX, hops: &[RtSilent], flag: Flag::Param,
        expect: Expect::Returned { connected: Some(true) }, word: "required" },
    // DANE encrypt-only (a usage-1 record: not usable): not verified.
    Cell { name: "d-encrypt-only", route: MX, hops: &[RtSelfSigned], flag: Flag::Param,
        expect: Expect::Returned { connected: None }, word: "required" },
    // Secure MX, no TLSA, a connector's CA verifies the MX host's name.
    Cell { name: "d-secure-ca", route: MX_CA, hops: &[Rt], flag: Flag::Param,
        expect: Expect::Delivered { at: 0, tls: true, param: true }, word: "required" },
    // 7 with DNSSEC on: the same in an insecure zone: never connected to.
    Cell { name: "d-insecure-ca", route: MX_CA, hops: &[Rt], flag: Flag::Param,
        expect: Expect::Returned { connected: Some(false) }, word: "required" },
];

/// Each cell's zone kind and the usage of the TLSA record made from its
/// server's key (none: no TLSA).
const ZONES: [(Kind, Option<u8>); 5] = [
    (Kind::Secure, Some(3)),
    (Kind::Secure, Some(3)),
    (Kind::Secure, Some(1)),
    (Kind::Secure, None),
    (Kind::Insecure, None),
];

/// The signed tree: a child zone per cell, and `sender.test` (insecure)
/// for the notices' receiver, reached by a connector.
fn tree(lab: &Lab) -> SignedDns {
    let mut tree = SignedDns::builder().zone(
        "sender.test",
        Kind::Insecure,
        &format!(
            "{} A {}\n",
            HOME.trim_end_matches(".sender.test"),
            lab.home.ip
        ),
    );
    for ((cell, (kind, usage)), hosts) in CELLS.iter().zip(ZONES).zip(&lab.hosts) {
        let mut records = String::new();
        for (i, far) in hosts.iter().enumerate() {
            let label = format!("mx{i}");
            records.push_str(&format!(
                "@ MX {} {label}\n{label} A {}\n",
                10 * (i + 1),
                far.ip
            ));
            if let (Some(usage), Some(cert)) = (usage, &far.cert) {
                let mut tlsa = tlsa_3_1_1(&cert.der);
                tlsa.usage = usage;
                records.push_str(&format!("_{}._tcp.{label} TLSA {tlsa}\n", lab.port));
            }
        }
        tree = tree.zone(&cell.domain(), kind, &records);
    }
    tree.start()
}

pub fn run() {
    let lab = Lab::start(&CELLS);
    let tree = tree(&lab);
    let relay = lab.relay(&CELLS, tree.addr, 1, Some(&tree.anchor));
    let outcome = send_and_settle(&lab, &relay, &CELLS);
    super::check::all(
        &CELLS,
        &relay,
        &lab,
        &outcome,
        false,
        "REQUIRETLS under DNSSEC and DANE",
    );
}
