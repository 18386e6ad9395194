//! Finding the policy in force for a domain (RFC 8461 §3, §5.1), with
//! the disk cache: one `mta-sts policy` log line per lookup.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::cache::{Cache, Entry};
use super::policy::{parse, Mode, Policy};
use super::record::{discover, Record};
use super::{Dns, BODY_CAP};
use crate::https::{Client, Target};
use crate::transit::ResultType;

/// What a lookup found.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// No policy (no record, `mode: none`): deliver as without MTA-STS.
    None,
    /// A policy in `enforce` or `testing` mode.
    Policy(Arc<Policy>),
    /// A policy is published and could not be had (and no unexpired one
    /// is cached): delivery goes on as without one; TLS-RPT hears why.
    Failed { kind: ResultType, reason: String },
}

/// A lookup, with what `probe` shows of it.
#[derive(Clone, Debug)]
pub struct Lookup {
    pub outcome: Outcome,
    /// The TXT record, none, or why the lookup failed.
    pub record: Result<Option<Record>, String>,
    /// The log's `result=` word: `fetched`, `cached`,
    /// `cached-after-fetch-error`, `none`, `removed`, `fetch-error`, `invalid`.
    pub result: &'static str,
    /// Seconds since the policy in force was fetched.
    pub age: u64,
}

/// The fetcher and its cache: `[mta_sts]` made ready.
#[derive(Clone)]
pub struct Finder {
    pub cache: Cache,
    pub client: Client,
    /// `[mta_sts] https_port`.
    pub port: u16,
}

impl Finder {
    /// The policy in force for `domain` (A-label form), now.
    pub async fn lookup<D: Dns>(&self, dns: &D, domain: &str) -> Lookup {
        let now = unix_now();
        let txt = dns.txt(&format!("_mta-sts.{domain}")).await;
        let record = txt.map(|txts| discover(&txts));
        let cached = self.cache.load(domain).await.and_then(|entry| {
            let policy = parse(&entry.text).ok()?;
            let age = now.saturating_sub(entry.fetched);
            (age < policy.max_age && policy.mode != Mode::None).then_some((entry, policy, age))
        });
        let lookup = match (&record, cached) {
            // §5.1: no record now (or no answer), and an unexpired policy.
            (Ok(None) | Err(_), Some((_, policy, age))) => found(policy, "cached", age),
            (Ok(None) | Err(_), None) => plain(Outcome::None, "none"),
            (Ok(Some(rec)), Some((entry, policy, age)))
                if entry.id == rec.id && age < policy.max_age / 2 =>
            {
                found(policy, "cached", age)
            }
            (Ok(Some(rec)), cached) => self.refetch(dns, domain, &rec.id, cached, now).await,
        };
        let lookup = Lookup { record, ..lookup };
        log(domain, &lookup);
        lookup
    }

    async fn refetch<D: Dns>(
        &self,
        dns: &D,
        domain: &str,
        id: &str,
        cached: Option<(Entry, Policy, u64)>,
        now: u64,
    ) -> Lookup {
        match self.fetch(dns, domain).await {
            Ok((_, policy)) if policy.mode == Mode::None => {
                if let Err(e) = self.cache.remove(domain).await {
                    tracing::warn!(domain, error = %e, "mta-sts cache: cannot remove the entry");
                }
                plain(Outcome::None, "removed")
            }
            Ok((text, policy)) => {
                let entry = Entry {
                    id: id.to_string(),
                    fetched: now,
                    text,
                };
                if let Err(e) = self.cache.store(domain, &entry).await {
                    tracing::warn!(domain, error = %e, "mta-sts cache: cannot store the policy");
                }
                found(policy, "fetched", 0)
            }
            Err((kind, reason)) => match cached {
                // §5.1: a failed refetch keeps the unexpired cached policy.
                Some((_, policy, age)) => {
                    tracing::warn!(domain, reason = %reason, "mta-sts refetch failed; the cached policy stays in force");
                    found(policy, "cached-after-fetch-error", age)
                }
                None => {
                    let result = match kind {
                        ResultType::StsPolicyInvalid => "invalid",
                        _ => "fetch-error",
                    };
                    plain(Outcome::Failed { kind, reason }, result)
                }
            },
        }
    }

    /// `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`, parsed.
    async fn fetch<D: Dns>(
        &self,
        dns: &D,
        domain: &str,
    ) -> Result<(Vec<u8>, Policy), (ResultType, String)> {
        let host = format!("mta-sts.{domain}");
        let fetch_error = |reason: String| (ResultType::StsPolicyFetchError, reason);
        let addresses = dns.addresses(&host).await.map_err(fetch_error)?;
        let target = Target {
            host: &host,
            addresses: &addresses,
            port: self.port,
            path: "/.well-known/mta-sts.txt",
        };
        let body = match self.client.get(&target, "text/plain", BODY_CAP).await {
            Ok(body) => body.to_vec(),
            Err(e) if e.is_tls() => return Err((ResultType::StsWebpkiInvalid, e.to_string())),
            Err(e) => return Err(fetch_error(e.to_string())),
        };
        match parse(&body) {
            Ok(policy) => Ok((body, policy)),
            Err(e) => Err((ResultType::StsPolicyInvalid, format!("policy file: {e}"))),
        }
    }
}

fn found(policy: Policy, result: &'static str, age: u64) -> Lookup {
    let outcome = match policy.mode {
        Mode::None => Outcome::None,
        _ => Outcome::Policy(Arc::new(policy)),
    };
    Lookup {
        outcome,
        record: Ok(None),
        result,
        age,
    }
}

fn plain(outcome: Outcome, result: &'static str) -> Lookup {
    Lookup {
        outcome,
        record: Ok(None),
        result,
        age: 0,
    }
}

fn log(domain: &str, lookup: &Lookup) {
    let id = match &lookup.record {
        Ok(Some(record)) => record.id.as_str(),
        _ => "-",
    };
    let (mode, max_age, reason) = match &lookup.outcome {
        Outcome::Policy(p) => (p.mode.word(), p.max_age.to_string(), "-".to_string()),
        Outcome::None => ("none", "-".into(), "-".into()),
        Outcome::Failed { reason, .. } => ("-", "-".into(), reason.clone()),
    };
    let reason = match (&lookup.record, reason.as_str()) {
        (Err(dns), "-") => format!("TXT lookup failed: {dns}"),
        _ => reason,
    };
    tracing::info!(
        domain,
        result = lookup.result,
        id,
        mode,
        max_age = %max_age,
        reason = %reason,
        "mta-sts policy"
    );
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}
