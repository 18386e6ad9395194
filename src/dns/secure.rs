//! Validated lookups for DANE (RFC 7672 §2): MX, addresses and TLSA, each
//! with what DNSSEC says about it, validated in process by hickory against
//! `[dns] trust_anchor` (never an upstream AD bit).
//!
//! How hickory 0.26 reports validation, and how it is read here:
//! * records carry a `proof`: all Secure → [`Security::Secure`]; Insecure
//!   or Indeterminate (no anchor covers the name) → [`Security::Insecure`];
//! * `DnssecBogus`, or an NSEC error with a Bogus or Indeterminate proof →
//!   [`Fault::Bogus`];
//! * no records: a denial is Secure only when its authority section holds
//!   NSEC/NSEC3 records proven Secure (hickory has checked that they deny
//!   the name or type, else it answers with an NSEC error); else Insecure;
//! * time-out, SERVFAIL, refusal → [`Fault::Failed`].
//!
//! Caching: hickory caches positive answers (TLSA records included, with
//! their proofs) for their TTL. It does not cache negative answers when it
//! validates (it drops their TTL), so "no TLSA" would cost a query per
//! delivery; [`DenialCache`] keeps TLSA denials for their negative TTL
//! (RFC 2308 §5: the SOA's TTL or MINIMUM, whichever is lower), at most
//! [`DENIAL_MAX_TTL`]. Bogus and failed answers are never cached.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, Record, RecordType};

use super::Dns;
use crate::outbound::dane::{Checked, FailKind, Fault, Security, TlsaAnswer, Validated};
use crate::outbound::route::MxAnswer;
use crate::tls::dane::Tlsa;

/// The longest a TLSA denial is believed without asking again.
pub const DENIAL_MAX_TTL: Duration = Duration::from_secs(3600);
const DENIAL_CACHE_ENTRIES: usize = 10_000;

/// What one validated query came back with.
enum Answer {
    Records(Vec<Record>, Security),
    /// NXDOMAIN or NODATA; `ttl` from the SOA (RFC 2308 §5).
    Empty {
        nx_domain: bool,
        security: Security,
        ttl: Option<u32>,
    },
}

impl Dns {
    /// Whether answers are validated (`[dns] dnssec`); when not, every
    /// answer is [`Security::Insecure`] and DANE never applies.
    pub fn validates(&self) -> bool {
        self.validating.is_some()
    }

    /// The MX answer for `domain`, with its DNSSEC status. A bogus answer
    /// is a [`Fault`], never an [`MxAnswer`]: the caller must defer the
    /// domain, not fall back to its address records (RFC 7672 §2.2.1).
    pub async fn mx_checked(&self, domain: &str) -> Checked<MxAnswer> {
        let name = absolute(domain);
        let answer = self.query(&name, RecordType::MX).await?;
        Ok(match answer {
            Answer::Records(records, security) => Validated {
                value: super::mx_answer(&records),
                security,
            },
            Answer::Empty {
                nx_domain,
                security,
                ..
            } => Validated {
                value: if nx_domain {
                    MxAnswer::NxDomain
                } else {
                    MxAnswer::NoMx
                },
                security,
            },
        })
    }

    /// The addresses of `host` with their DNSSEC status: A, else AAAA
    /// (the order routing uses), so the status is that of the RRset used.
    pub async fn addresses_checked(&self, host: &str) -> Checked<Vec<IpAddr>> {
        let name = absolute(host);
        let mut last = None;
        for record_type in [RecordType::A, RecordType::AAAA] {
            match self.query(&name, record_type).await? {
                Answer::Records(records, security) => {
                    let value: Vec<IpAddr> = records
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::A(a) => Some(IpAddr::V4(a.0)),
                            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                            _ => None,
                        })
                        .collect();
                    if !value.is_empty() {
                        return Ok(Validated { value, security });
                    }
                    last = Some(security);
                }
                Answer::Empty { security, .. } => last = Some(security),
            }
        }
        Ok(Validated {
            value: Vec::new(),
            security: last.unwrap_or(Security::Insecure),
        })
    }

    /// Whether validation works through the configured name servers: the
    /// trust anchor zone's DNSKEY RRset validates. A resolver that strips
    /// DNSSEC records (or a name server that cannot answer for the anchor's
    /// zone) fails this, and then every answer under the anchor is bogus:
    /// the daemon warns at start-up (see README, "DANE").
    pub async fn validation_works(&self) -> Result<(), String> {
        let zone = &self.anchor_zone;
        match self.query(zone, RecordType::DNSKEY).await {
            Ok(Answer::Records(_, Security::Secure)) => Ok(()),
            Ok(Answer::Records(_, Security::Insecure)) => Err(format!(
                "the DNSKEY records of {zone} do not validate against the trust anchor"
            )),
            Ok(Answer::Empty { .. }) => Err(format!("no DNSKEY record for {zone} came back")),
            Err(fault) => Err(fault.to_string()),
        }
    }

    /// `_PORT._tcp.HOST. TLSA` (RFC 7672 §2.2), typed.
    pub async fn tlsa(&self, host: &str, port: u16) -> TlsaAnswer {
        if !self.validates() {
            return TlsaAnswer::Insecure;
        }
        let name = format!("_{port}._tcp.{}", absolute(host));
        if let Some(cached) = self.denials.get(&name, Instant::now()) {
            return cached;
        }
        let answer = match self.query(&name, RecordType::TLSA).await {
            Err(Fault::Bogus { reason, .. }) => return TlsaAnswer::Bogus(reason),
            Err(Fault::Failed { kind, reason, .. }) => return TlsaAnswer::Failed { kind, reason },
            Ok(answer) => answer,
        };
        match answer {
            Answer::Records(_, Security::Insecure) => TlsaAnswer::Insecure,
            Answer::Records(records, Security::Secure) => {
                let tlsa: Vec<Tlsa> = records
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TLSA(t) => Some(Tlsa {
                            usage: t.cert_usage.into(),
                            selector: t.selector.into(),
                            matching: t.matching.into(),
                            data: t.cert_data.clone(),
                        }),
                        _ => None,
                    })
                    .collect();
                // A CNAME chain that ends in no TLSA proves nothing.
                match tlsa.is_empty() {
                    true => TlsaAnswer::Insecure,
                    false => TlsaAnswer::Records(tlsa),
                }
            }
            Answer::Empty { security, ttl, .. } => {
                let answer = match security {
                    Security::Secure => TlsaAnswer::SecureDenial,
                    Security::Insecure => TlsaAnswer::Insecure,
                };
                if let Some(ttl) = ttl {
                    let ttl = Duration::from_secs(ttl.into()).min(DENIAL_MAX_TTL);
                    self.denials.put(name, answer.clone(), Instant::now() + ttl);
                }
                answer
            }
        }
    }

    /// One query through the validating resolver, read as described in
    /// the module documentation.
    async fn query(&self, name: &str, record_type: RecordType) -> Result<Answer, Fault> {
        let Some(resolver) = &self.validating else {
            return self.query_unvalidated(name, record_type).await;
        };
        match resolver.lookup(name, record_type).await {
            Ok(lookup) => {
                let records: Vec<Record> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() != RecordType::RRSIG)
                    .cloned()
                    .collect();
                // An answer with no record proves nothing.
                let proven =
                    !records.is_empty() && records.iter().all(|r| r.proof == Proof::Secure);
                let security = match proven {
                    true => Security::Secure,
                    false => Security::Insecure,
                };
                if records.iter().any(|r| r.proof == Proof::Bogus) {
                    return Err(bogus(name, "a record failed validation".into()));
                }
                Ok(Answer::Records(records, security))
            }
            Err(e) => read_error(name, e),
        }
    }

    /// `[dns] dnssec = false`: the plain resolver, everything insecure.
    async fn query_unvalidated(
        &self,
        name: &str,
        record_type: RecordType,
    ) -> Result<Answer, Fault> {
        match self.resolver.lookup(name, record_type).await {
            Ok(lookup) => Ok(Answer::Records(
                lookup.answers().to_vec(),
                Security::Insecure,
            )),
            Err(e) => match read_error(name, e)? {
                Answer::Empty { nx_domain, ttl, .. } => Ok(Answer::Empty {
                    nx_domain,
                    security: Security::Insecure,
                    ttl,
                }),
                records => Ok(records),
            },
        }
    }
}

fn absolute(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

fn bogus(name: &str, reason: String) -> Fault {
    Fault::Bogus {
        name: name.to_string(),
        reason,
    }
}

fn read_error(name: &str, error: NetError) -> Result<Answer, Fault> {
    let failed = |kind, reason: String| Fault::Failed {
        name: name.to_string(),
        kind,
        reason,
    };
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => Ok(denial(&no_records)),
        NetError::Dns(DnsError::DnssecBogus) => Err(bogus(name, "DNSSEC validation failed".into())),
        NetError::Dns(DnsError::Nsec { proof, .. }) => match proof {
            Proof::Insecure => Ok(Answer::Empty {
                nx_domain: false,
                security: Security::Insecure,
                ttl: None,
            }),
            other => Err(bogus(name, format!("the denial of existence is {other}"))),
        },
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => {
            Err(failed(FailKind::ServFail, "SERVFAIL".into()))
        }
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => {
            Err(failed(FailKind::Refused, "REFUSED".into()))
        }
        NetError::Timeout => Err(failed(FailKind::TimedOut, "no answer in time".into())),
        other => Err(failed(FailKind::Other, other.to_string())),
    }
}

/// A negative answer: Secure when Secure NSEC/NSEC3 records came with it.
fn denial(no_records: &NoRecords) -> Answer {
    let authorities = no_records.authorities.as_deref().unwrap_or(&[]);
    let proven = authorities.iter().any(|r| {
        r.proof == Proof::Secure
            && matches!(
                &r.data,
                RData::DNSSEC(DNSSECRData::NSEC(_)) | RData::DNSSEC(DNSSECRData::NSEC3(_))
            )
    });
    // RFC 2308 §5: the lower of the SOA's own TTL and its MINIMUM field.
    let ttl = no_records
        .soa
        .as_ref()
        .map(|soa| soa.ttl.min(soa.data.minimum));
    Answer::Empty {
        nx_domain: no_records.response_code == ResponseCode::NXDomain,
        security: match proven {
            true => Security::Secure,
            false => Security::Insecure,
        },
        ttl,
    }
}

/// TLSA denials by owner name, until their negative TTL runs out.
#[derive(Debug, Default)]
pub(super) struct DenialCache {
    entries: Mutex<HashMap<String, (Instant, TlsaAnswer)>>,
}

impl DenialCache {
    fn get(&self, name: &str, now: Instant) -> Option<TlsaAnswer> {
        let entries = self.entries.lock().ok()?;
        let (until, answer) = entries.get(name)?;
        (*until > now).then(|| answer.clone())
    }

    fn put(&self, name: String, answer: TlsaAnswer, until: Instant) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= DENIAL_CACHE_ENTRIES {
            let now = Instant::now();
            entries.retain(|_, (until, _)| *until > now);
        }
        // Still full of live entries: serve them, ask again for the rest.
        if entries.len() < DENIAL_CACHE_ENTRIES {
            entries.insert(name, (until, answer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_live_until_their_ttl_and_the_cache_stays_bounded() {
        let cache = DenialCache::default();
        let now = Instant::now();
        let name = "_25._tcp.mx.example.".to_string();
        cache.put(
            name.clone(),
            TlsaAnswer::SecureDenial,
            now + Duration::from_secs(60),
        );
        assert_eq!(cache.get(&name, now), Some(TlsaAnswer::SecureDenial));
        assert_eq!(cache.get(&name, now + Duration::from_secs(61)), None);
        for i in 0..DENIAL_CACHE_ENTRIES + 10 {
            cache.put(
                format!("_{i}."),
                TlsaAnswer::Insecure,
                now + Duration::from_secs(60),
            );
        }
        assert!(cache.entries.lock().expect("lock").len() <= DENIAL_CACHE_ENTRIES);
    }
}
