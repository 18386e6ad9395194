//! Finding the policy in force for a domain (RFC 8461 §3, §5.1), with
//! the disk cache: one `mta-sts policy` log line per lookup.
//!
//! A fetched `mode: none` is cached like any policy (it replaces the one
//! before, RFC 8461 §5): the domain is not fetched again until its id
//! changes or half its `max_age` has passed. A fetch that failed, with
//! nothing cached, is remembered in memory for [`FAILED_FETCH_MEMORY`]
//! per domain and id, so a blackholed policy server costs one
//! `fetch_timeout` per five minutes, not one per message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// How long a failed fetch (with nothing cached) is not tried again for
/// the same domain and record id.
pub const FAILED_FETCH_MEMORY: Duration = Duration::from_secs(300);

/// The fetcher and its cache: `[mta_sts]` made ready.
#[derive(Clone)]
pub struct Finder {
    pub cache: Cache,
    pub client: Client,
    /// `[mta_sts] https_port`.
    pub port: u16,
    /// Recent failed fetches by domain: when, the record id, and why.
    pub failed: Arc<Mutex<HashMap<String, FailedFetch>>>,
}

/// A fetch that failed, remembered for [`FAILED_FETCH_MEMORY`].
#[derive(Clone, Debug)]
pub struct FailedFetch {
    at: Instant,
    id: String,
    kind: ResultType,
    reason: String,
}

impl Finder {
    pub fn new(cache: Cache, client: Client, port: u16) -> Finder {
        Finder {
            cache,
            client,
            port,
            failed: Arc::default(),
        }
    }

    /// The failure of a fetch for `domain` with record `id` in the last
    /// [`FAILED_FETCH_MEMORY`], if any (older ones are forgotten).
    fn recent_failure(&self, domain: &str, id: &str) -> Option<FailedFetch> {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.retain(|_, f| f.at.elapsed() < FAILED_FETCH_MEMORY);
        failed.get(domain).filter(|f| f.id == id).cloned()
    }

    fn remember_failure(&self, domain: &str, failure: FailedFetch) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.insert(domain.to_string(), failure);
    }
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
            (age < policy.max_age).then_some((entry, policy, age))
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
            (Ok(Some(rec)), None) => match self.recent_failure(domain, &rec.id) {
                Some(failed) => {
                    let reason = format!(
                        "{} (failed less than {} s ago; not fetched again yet)",
                        failed.reason,
                        FAILED_FETCH_MEMORY.as_secs()
                    );
                    let result = result_word(failed.kind);
                    plain(
                        Outcome::Failed {
                            kind: failed.kind,
                            reason,
                        },
                        result,
                    )
                }
                None => self.refetch(dns, domain, &rec.id, None, now).await,
            },
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
            Ok((text, policy)) => {
                let entry = Entry {
                    id: id.to_string(),
                    fetched: now,
                    text,
                };
                if let Err(e) = self.cache.store(domain, &entry).await {
                    tracing::warn!(domain, error = %e, "mta-sts cache: cannot store the policy");
                }
                // `mode: none` replaces the policy before it (RFC 8461 §5).
                let result = match policy.mode {
                    Mode::None => "removed",
                    _ => "fetched",
                };
                found(policy, result, 0)
            }
            Err((kind, reason)) => match cached {
                // §5.1: a failed refetch keeps the unexpired cached policy.
                Some((_, policy, age)) => {
                    tracing::warn!(domain, reason = %reason, "mta-sts refetch failed; the cached policy stays in force");
                    found(policy, "cached-after-fetch-error", age)
                }
                None => {
                    let failure = FailedFetch {
                        at: Instant::now(),
                        id: id.to_string(),
                        kind,
                        reason: reason.clone(),
                    };
                    self.remember_failure(domain, failure);
                    plain(Outcome::Failed { kind, reason }, result_word(kind))
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

/// The log's word for a policy that could not be had.
fn result_word(kind: ResultType) -> &'static str {
    match kind {
        ResultType::StsPolicyInvalid => "invalid",
        _ => "fetch-error",
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
