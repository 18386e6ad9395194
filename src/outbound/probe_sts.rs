//! `probe`'s MTA-STS lines (DESIGN.md §5b): the TXT record, the policy
//! and where it came from, whether each MX host matches, and the `sts=`
//! word delivery's attempt line would carry (`MTA-STS outcome`).

use std::fmt::Write;

use super::ladder::{How, Ready};
use super::route::Hop;
use super::stream::Stream;
use super::sts::{judge, DomainSts, StsSettings};
use crate::config::values::Host;
use crate::mta_sts::{Lookup, Outcome};

/// The record and policy lines, before the per-host lines.
pub fn describe(out: &mut String, lookup: Option<&Lookup>, hops: &[Hop], sts: &DomainSts) {
    let Some(lookup) = lookup else {
        let _ = writeln!(
            out,
            "MTA-STS record: not looked up (disabled, smarthost, address literal or forced level)"
        );
        return;
    };
    let record = match &lookup.record {
        Ok(Some(record)) => record.text.clone(),
        Ok(None) => "none".into(),
        Err(e) => format!("lookup failed: {e}"),
    };
    let _ = writeln!(out, "MTA-STS record: {record}");
    let source = match lookup.result {
        "fetched" => "fetched now".to_string(),
        "cached" => format!("cached, age {} s", lookup.age),
        "cached-after-fetch-error" => format!("cached, age {} s, refetch failed", lookup.age),
        other => other.to_string(),
    };
    let policy = match &lookup.outcome {
        Outcome::Policy(p) => format!(
            "mode={} max_age={} mx={} ({source})",
            p.mode.word(),
            p.max_age,
            p.mx.join(",")
        ),
        Outcome::None if lookup.result == "removed" => "none (mode none: cache cleared)".into(),
        Outcome::None => "none".into(),
        Outcome::Failed { kind, reason } => {
            format!("could not be had ({}): {reason}; as no policy", kind.word())
        }
    };
    let _ = writeln!(out, "MTA-STS policy: {policy}");
    if let Some(policy) = sts.judging() {
        for hop in hops {
            let matches = match &hop.host {
                Host::Name(name) => policy.matches(name.as_str()),
                Host::Ip(_) => false,
            };
            let said = if matches { "matches" } else { "does not match" };
            let _ = writeln!(out, "MTA-STS mx {}: {said}", hop.host);
        }
    }
}

/// The `sts=` word of a connection ready for MAIL under `sts`.
pub fn word(
    settings: Option<&StsSettings>,
    sts: &DomainSts,
    hop: &Hop,
    ready: &Ready,
) -> &'static str {
    match (sts, settings) {
        (DomainSts::Enforce(_), _) => "enforced",
        (DomainSts::Testing(_), Some(settings)) => {
            let passed = match (&ready.how, ready.client.stream()) {
                (How::Tls { .. }, Stream::Tls(tls)) => {
                    let chain = tls.get_ref().1.peer_certificates().unwrap_or_default();
                    judge(&settings.trust, chain, &hop.host).is_ok()
                }
                _ => false,
            };
            if passed {
                "testing"
            } else {
                "testing-failed"
            }
        }
        (other, _) => other.word(),
    }
}
