//! `probe`'s DANE lines (DESIGN.md §5b): per MX host the DNSSEC status
//! of the MX and address answers, the TLSA records and what DANE makes of
//! the host (from `super::route::plan_host`, as delivery has it), and,
//! once the server presented its chain, each record's check against it
//! (`crate::tls::dane::check_record`).

use std::fmt::Write;

use super::dane::{HostDane, Status, TlsaAnswer};
use super::route::{Hop, HostPlan};
use crate::tls::client::Presented;
use crate::tls::dane::{check_record, RecordCheck, Tlsa};

/// The DNSSEC answers of one host and what DANE makes of them.
pub fn describe(out: &mut String, hop: &Hop, plan: &HostPlan) {
    let status = |s: Option<Status>| match s {
        Some(Status::Secure) => "secure",
        Some(Status::Insecure) => "insecure",
        Some(Status::Bogus) => "bogus",
        Some(Status::Failed) => "failed",
        None => "not validated",
    };
    let _ = writeln!(
        out,
        "  DNSSEC             MX {}, addresses {}",
        status(Some(hop.mx)),
        status(plan.address_status)
    );
    let tlsa = match &plan.tlsa {
        None => "not looked up (needs secure MX and address answers)".to_string(),
        Some(TlsaAnswer::Records(records)) => {
            for record in records {
                let _ = writeln!(out, "  TLSA record        {record}");
            }
            format!("{} record(s), DNSSEC secure", records.len())
        }
        Some(TlsaAnswer::SecureDenial) => "none (securely denied)".into(),
        Some(TlsaAnswer::Insecure) => "insecure answer".into(),
        Some(TlsaAnswer::Bogus(why)) => format!("bogus: {why}"),
        Some(TlsaAnswer::Failed { kind, reason }) => format!("lookup {kind}: {reason}"),
    };
    let _ = writeln!(out, "  TLSA               {tlsa}");
    let means = match &plan.dane {
        HostDane::Off => "off".to_string(),
        HostDane::NoDane(_) => format!("{}: the connector's level applies", plan.dane.label()),
        HostDane::Authenticate(records) => format!(
            "TLS mandatory, authenticated by {} usable TLSA record(s), SNI {}",
            records.len(),
            hop.host
        ),
        HostDane::EncryptOnly => "TLS mandatory, unauthenticated (no usable TLSA record)".into(),
        HostDane::HostUnusable(why) => format!("host unusable: {why}"),
        HostDane::DeferDomain(why) => format!("the domain waits: {why}"),
    };
    let _ = writeln!(out, "  DANE               {means}");
}

/// What each record makes of the chain the server presented, and the
/// verdict the handshake acted on. `names`: the MX host, the domain.
pub fn checked(out: &mut String, names: &[String], records: &[Tlsa], presented: &Presented) {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let now = rustls::pki_types::UnixTime::now();
    for record in records {
        let said = match check_record(record, &presented.chain, &names, now) {
            RecordCheck::Matches => "matches the presented certificate".to_string(),
            RecordCheck::Unusable => "unusable (usage 0/1 or unknown)".into(),
            RecordCheck::NoMatch => "does not match the presented certificate".into(),
            RecordCheck::ChainFails(why) | RecordCheck::NameFails(why) => {
                format!("does not authenticate: {why}")
            }
        };
        let _ = writeln!(out, "  TLSA check         {record}: {said}");
    }
    let verdict = match &presented.result {
        Ok(a) => format!("authenticated by {}", a.record),
        Err(e) => format!("not authenticated: {e}"),
    };
    let _ = writeln!(out, "  DANE result        {verdict}");
}
