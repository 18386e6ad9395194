//! One server address of a delivery attempt (DESIGN.md §5): a kept
//! connection if one answers RSET, else up the TLS ladder; then the
//! transaction. The attempt's log lines carry the policies in force
//! (`dane=`, `sts=`), and its sessions go to the transit store
//! (`super::transit_log`).

use super::attempt_log::AttemptLog;
use super::dane::Mandatory;
use super::deliver::{Deliverer, Skip};
use super::ladder::{Channel, Ladder, Stop};
use super::observer::Observer;
use super::outcome::Verdict;
use super::route::Resolve;
use super::send::{converse, Job};
use super::transit_log::{method, tls_version, Sessions};
use crate::smtp::status::EnhancedStatus;

/// What governs the host beside the connector: the `dane=` word of its
/// plan, the `sts=` word before the attempt, and whether an MTA-STS
/// policy in `testing` mode judges it.
pub(super) struct Governed {
    pub dane: &'static str,
    pub sts: &'static str,
    pub testing: bool,
    /// The `requiretls=` word (`super::requiretls::Demand::word`).
    pub requiretls: &'static str,
}

impl<R: Resolve> Deliverer<R> {
    /// One server address: a kept connection if one answers, else up the
    /// ladder; then the transaction. `Err` when it gave no verdict.
    pub(super) async fn attempt_address(
        &self,
        job: &Job<'_>,
        ladder: &Ladder<'_>,
        governed: Governed,
        sessions: Sessions<'_>,
    ) -> Result<(Vec<Verdict>, String), Skip> {
        let (connector, addr) = (ladder.connector, ladder.addr);
        let host = ladder.hop.host.to_string();
        let pool = &self.shared.pool;
        let sink = self.shared.transit.as_ref();
        let recipients: Vec<&str> = job.group.iter().map(|r| r.address.as_str()).collect();
        let mut log = AttemptLog {
            queue_id: job.queue_id,
            recipients: recipients.join(","),
            host: &host,
            addr,
            connector,
            memory_note: "-".into(),
            memory: &self.shared.memory,
            level: ladder.level(),
            dane: super::dane::unmet(ladder.dane, governed.dane),
            usage: None,
            sts: governed.sts,
            requiretls: governed.requiretls,
            sessions,
        };
        // At most max_connections_per_destination at once to one host.
        let _slot = pool.slot(&format!("{host}:{}", ladder.hop.port)).await;
        // A kept connection serves only mail under the same policy: one
        // made without DANE, or under other TLSA records, never serves a
        // host that DANE now governs; nor one made without MTA-STS a host
        // under `enforce`.
        // Nor one made for unflagged mail a message flagged REQUIRETLS:
        // only a connection that met its checks is kept under its key.
        let sts_key = match (ladder.sts, ladder.requiretls) {
            (Some(_), true) => " mta-sts requiretls",
            (Some(_), false) => " mta-sts",
            (None, true) => " requiretls",
            (None, false) => "",
        };
        let key = match ladder.dane {
            Some(Mandatory::Authenticate(records)) => {
                let records: Vec<String> = records.iter().map(ToString::to_string).collect();
                let (label, records) = (connector.label(), records.join(","));
                format!("{addr} dane {label} {records}{sts_key}")
            }
            Some(Mandatory::EncryptOnly) => {
                format!("{addr} dane-encrypt {}{sts_key}", connector.label())
            }
            None => format!(
                "{addr} {} {}{sts_key}",
                connector.level(),
                connector.label()
            ),
        };
        if let Some(idle) = pool.take(&key).await {
            if let Some(mandatory) = ladder.dane {
                log.dane = mandatory.met();
            }
            let (kept_method, kept_sts) = idle.transit;
            if governed.sts != "-" && governed.sts != "none" {
                log.sts = kept_sts;
            }
            let summary = format!("{} (reused)", idle.tls);
            let logged = |result: &str| log.line(&summary, &idle.channel, result);
            let (verdicts, back) = converse(idle.client, job, &host, logged).await;
            if !verdicts.is_empty() {
                if verdicts.iter().any(is_delivered) {
                    let version = match &idle.channel {
                        Channel::Tls { version, .. } => Some(tls_version(version)),
                        _ => None,
                    };
                    log.sessions.reused(sink, kept_method, version);
                }
                if let Some(client) = back {
                    pool.park(&key, client, idle.tls, idle.channel, idle.transit);
                }
                return Ok((verdicts, summary));
            }
            // Its RSET, pipelined in front of MAIL, failed: the kept
            // connection had gone stale, nothing was sent; a new one.
        }
        let start = self
            .shared
            .memory
            .start(ladder.level(), ladder.fallback, &addr.to_string());
        log.memory_note = start.note();
        let ready = match ladder.climb(&start, &mut log).await {
            Ok(ready) => ready,
            Err(stop) => {
                log.sessions.finish(sink, None, ladder.level(), None, false);
                return Err(match stop {
                    Stop::Unreachable(reason) => Skip {
                        status: EnhancedStatus::NO_ANSWER,
                        reason: format!("{host} [{addr}]: {reason}"),
                        requiretls: false,
                    },
                    // A flagged message's hop whose TLS fell short.
                    Stop::Deferred(deferral) => Skip {
                        status: deferral.status(),
                        reason: format!("{host}: {deferral}"),
                        requiretls: ladder.requiretls,
                    },
                });
            }
        };
        if let Some((word, usage)) = ready.how.dane() {
            log.dane = word;
            log.usage = usage.or(log.usage);
        }
        log.sts = match (ladder.sts, governed.testing) {
            (Some(_), _) => "enforced",
            (None, true) if log.sessions.failed(&ready.how) => "testing-failed",
            (None, _) => governed.sts,
        };
        let sending_ip = ready.client.stream().local_ip();
        let offered = ready.client.capabilities.requiretls;
        let unmet = super::requiretls::unmet(ladder.requiretls, &ready.how, offered, &host);
        if let Some(deferral) = unmet {
            // Verified TLS that does not offer REQUIRETLS, or TLS not
            // verified: QUIT before MAIL, so nothing of the message goes.
            log.sessions
                .finish(sink, Some(&ready.how), ladder.level(), sending_ip, false);
            log.deferred(&deferral, &Channel::DeferredForPolicy);
            ready.client.quit().await;
            return Err(Skip {
                status: deferral.status(),
                reason: format!("{host}: {deferral}"),
                requiretls: true,
            });
        }
        let (summary, channel) = (ready.how.summary(), ready.how.channel());
        let sts_enforced = ladder.sts.is_some();
        let kept = (method(&ready.how, ladder.level(), sts_enforced), log.sts);
        let logged = |result: &str| log.line(&summary, &channel, result);
        let (mut verdicts, back) = converse(ready.client, job, &host, logged).await;
        let delivered = verdicts.iter().any(is_delivered);
        log.sessions.finish(
            sink,
            Some(&ready.how),
            ladder.level(),
            sending_ip,
            delivered,
        );
        match (back, &channel) {
            // A plaintext session after TLS failed is not kept: the next
            // message tries TLS again, so a broken handshake buys no
            // later plaintext.
            (Some(client), Channel::Fallback) => drop(tokio::spawn(client.quit())),
            (Some(client), _) => pool.park(&key, client, summary.clone(), channel.clone(), kept),
            (None, _) => {}
        }
        if matches!(channel, Channel::Fallback) {
            verdicts = verdicts.into_iter().map(Verdict::after_fallback).collect();
        }
        Ok((verdicts, summary))
    }
}

fn is_delivered(verdict: &Verdict) -> bool {
    matches!(verdict, Verdict::Delivered { .. })
}
