//! `tlsrelay probe DOMAIN`: what delivery to a domain would do, host by
//! host, without sending any mail: addresses, STARTTLS offered, the TLS
//! each rung negotiates, the certificate, which TLS levels would accept
//! it, and the verdict under the configured connector (DESIGN.md §2).
//!
//! It climbs delivery's own ladder ([`super::ladder`]) with an observer
//! that writes what each step met, and stops before MAIL: so its verdict
//! is what delivery would do, rung by rung. It reads the broken-TLS
//! memory and never writes it.
//!
//! Where DANE is asked it shows, per MX host, the DNSSEC status of the MX
//! and address answers, the TLSA records, whether the presented
//! certificate matches each (`crate::tls::dane::check_record`), and what
//! DANE makes of the host: the same `route::plan_host` and ladder as
//! delivery, so the same `dane=` word ([`Prediction::dane`]).
//!
//! MTA-STS: the record, the policy (cached or fetched; the cache is read,
//! never written), whether each MX matches, and `MTA-STS outcome sts=WORD`
//! (see `super::probe_sts`); the ladder climbs under the policy as
//! delivery does.

use std::fmt::Write;
use std::net::SocketAddr;

use super::dane::{Governs, Mandatory};
use super::deliver::{Deliverer, Settings};
use super::ladder::{How, Stop};
use super::policy::{self, Deferral, Plaintext, Start};
use super::probe_dane;
use super::probe_steps::Steps;
use super::probe_sts;
use super::requiretls;
use super::route::{hops, mx_fault, plan_host, Hop, Hops, Resolve};
use super::sts::DomainSts;
use crate::config::domain::MailDomain;
use crate::config::values::{Host, RequireTlsPolicy};

/// What delivery would do with mail to the domain.
#[derive(Clone, Debug)]
pub enum Prediction {
    /// It would go to `via`, protected as `how` says; `dane` is the
    /// attempt log's `dane=` word.
    Deliver {
        via: SocketAddr,
        how: How,
        dane: &'static str,
    },
    /// It would bounce (null MX, no such domain).
    Bounce {
        status: crate::smtp::status::EnhancedStatus,
        reason: String,
    },
    /// It would stay queued: every address was unreachable or refused by
    /// the policy; the last one's reason and `dane=` word.
    Wait {
        stop: Option<Stop>,
        dane: &'static str,
    },
}

impl Prediction {
    /// The `dane=` word delivery's log line would carry (`-` for a bounce).
    pub fn dane(&self) -> &'static str {
        match self {
            Prediction::Deliver { dane, .. } | Prediction::Wait { dane, .. } => dane,
            Prediction::Bounce { .. } => "-",
        }
    }
}

/// The report, as text and as the verdict it ends with.
pub struct Report {
    pub text: String,
    pub prediction: Prediction,
}

/// The report for one domain; `port` replaces every hop's.
pub async fn predict<R: Resolve>(
    deliverer: &Deliverer<R>,
    domain: &MailDomain,
    port: Option<u16>,
) -> Report {
    predict_for(deliverer, domain, port, false).await
}

/// The report for one domain, for a message flagged REQUIRETLS when
/// `flagged` (`probe --requiretls`); `port` replaces every hop's.
pub async fn predict_for<R: Resolve>(
    deliverer: &Deliverer<R>,
    domain: &MailDomain,
    port: Option<u16>,
    flagged: bool,
) -> Report {
    let settings = deliverer.settings();
    let mut out = String::new();
    let connector = settings.connectors.for_domain(domain);
    let level = connector.level();
    let name = match connector.is_default {
        true => connector.settings.name.clone(),
        false => format!("\"{}\"", connector.settings.name),
    };
    let _ = writeln!(
        out,
        "Domain       {domain}\nConnector    {name}\nTLS level    {level}"
    );
    let required = flagged && connector.settings.requiretls == RequireTlsPolicy::Enforce;
    if flagged {
        let how = match required {
            true => "required: an authenticated hop, verified TLS, REQUIRETLS offered",
            false => "ignored (requiretls = \"off\"), passed on where offered",
        };
        let _ = writeln!(out, "REQUIRETLS   {how}");
    }
    let mx_port = port.unwrap_or(settings.mx_port);
    let dane_asked = settings.dane_asked(connector);
    let validated = dane_asked || (required && settings.resolver.validates());
    let smarthost = !connector.settings.smarthosts.is_empty();
    if !dane_asked {
        let why = match (settings.dane, settings.resolver.validates()) {
            (false, _) => "off ([delivery] dane = false)",
            (_, false) => "off ([dns] dnssec = false)",
            _ => "not asked (the connector's level keeps its own check)",
        };
        let _ = writeln!(out, "DANE         {why}");
    }
    let route = hops(
        &settings.resolver,
        &connector.settings.smarthosts,
        domain,
        mx_port,
        validated,
        |_| {},
    );
    let hop_list = match route.await {
        Ok(Hops::Try(list)) => list,
        Ok(Hops::Fail { status, reason }) => {
            let verdict = format!("would bounce ({status}): {reason}");
            return finish(out, domain, verdict, Prediction::Bounce { status, reason });
        }
        Ok(Hops::MxFault(fault)) => {
            let _ = writeln!(out, "MX DNSSEC    {fault}");
            let (dane, deferral) = mx_fault(level, &fault);
            let verdict = format!(
                "would wait in the queue ({}): {deferral}",
                deferral.status()
            );
            let stop = Some(Stop::Deferred(deferral));
            return finish(out, domain, verdict, Prediction::Wait { stop, dane });
        }
        Err(e) => {
            let verdict = format!("would wait in the queue: {e}");
            let stop = Some(Stop::Unreachable(e.to_string()));
            let dane = "-";
            return finish(out, domain, verdict, Prediction::Wait { stop, dane });
        }
    };
    let (sts, lookup) = DomainSts::find(
        settings.mta_sts.as_ref(),
        &settings.resolver,
        connector,
        domain,
    )
    .await;
    probe_sts::describe(&mut out, lookup.as_ref(), &hop_list, &sts);
    let mut sts_word = sts.word();
    // Why each host tried would not take the mail, for the overall verdict.
    let mut refusals = Vec::new();
    let mut overall: Option<(String, Prediction)> = None;
    let mut last = None;
    let mut last_dane = "-";
    // As delivery counts them: hosts refused for REQUIRETLS, or unreachable.
    let mut tally = requiretls::Tally::default();
    for hop in hop_list {
        let hop = Hop {
            port: port.unwrap_or(hop.port),
            ..hop
        };
        let _ = writeln!(out, "\nHost {}:{}", hop.host, hop.port);
        let plan = plan_host(&settings.resolver, &hop, level, dane_asked).await;
        if dane_asked {
            probe_dane::describe(&mut out, &hop, &plan);
        }
        let mandatory = match &plan.governs {
            Governs::Level => None,
            Governs::Dane(mandatory) => Some(mandatory),
            Governs::NextHost(deferral) | Governs::DeferDomain(deferral) => {
                let _ = writeln!(out, "  Verdict            would defer: {deferral}");
                refusals.push(format!("{}: {deferral}", hop.host));
                last_dane = deferral.dane_word().unwrap_or("-");
                last = Some(Stop::Deferred(deferral.clone()));
                tally.skipped(false);
                if matches!(plan.governs, Governs::DeferDomain(_)) {
                    break;
                }
                continue;
            }
        };
        // DANE first (RFC 8461 §2): MTA-STS only where DANE does not govern.
        let host_sts = match mandatory {
            Some(_) => &DomainSts::NotAsked,
            None => &sts,
        };
        if let Some(deferral) = host_sts.refuses(&hop.host) {
            let _ = writeln!(out, "  Verdict            would not connect: {deferral}");
            refusals.push(format!("{}: {deferral}", hop.host));
            sts_word = "mx-mismatch";
            last = Some(Stop::Deferred(deferral));
            tally.skipped(required);
            continue;
        }
        let authenticated = requiretls::hop_authenticated(&hop, smarthost, host_sts.enforced());
        if required && !authenticated {
            let deferral = Deferral::RequireTlsMx(hop.host.to_string());
            let _ = writeln!(out, "  Verdict            would not connect: {deferral}");
            refusals.push(format!("{}: {deferral}", hop.host));
            last = Some(Stop::Deferred(deferral));
            tally.skipped(true);
            continue;
        }
        let ips = match &plan.addresses {
            Ok(ips) => ips.clone(),
            Err((_, why)) => {
                let _ = writeln!(out, "  Addresses          none: {why}");
                refusals.push(format!("{}: {why}", hop.host));
                tally.skipped(false);
                continue;
            }
        };
        for ip in ips {
            let addr = SocketAddr::new(ip, hop.port);
            let server = match &hop.host {
                Host::Ip(_) => addr.to_string(),
                Host::Name(name) => format!("{name}:{} [{ip}]", hop.port),
            };
            let target = Target {
                hop: &hop,
                addr,
                mandatory,
                dane: plan.dane.label(),
                sts: host_sts,
                requiretls: required,
            };
            match probe_address(deliverer, &settings, domain, &target, &mut out).await {
                Ok((verdict, prediction, word)) => {
                    if overall.is_none() {
                        sts_word = word;
                    }
                    overall.get_or_insert((format!("{verdict} via {server}"), prediction));
                }
                Err(stop) => {
                    if let Stop::Deferred(deferral) = &stop {
                        sts_word = deferral.sts_word().unwrap_or(sts_word);
                    }
                    last_dane = match &stop {
                        Stop::Deferred(deferral) if deferral.dane_word().is_some() => {
                            deferral.dane_word().unwrap_or("-")
                        }
                        _ => super::dane::unmet(mandatory, plan.dane.label()),
                    };
                    let why = match &stop {
                        Stop::Unreachable(why) => why.clone(),
                        Stop::Deferred(deferral) => deferral.to_string(),
                    };
                    tally.skipped(required && matches!(stop, Stop::Deferred(_)));
                    refusals.push(format!("{server}: {why}"));
                    last = Some(stop);
                }
            }
        }
    }
    // One line that answers the question asked, whatever the hosts said:
    // the first host that would take the mail, as delivery goes down the
    // list in the same order, or why none would.
    let (verdict, prediction) = overall.unwrap_or_else(|| {
        if tally.returns() {
            let status = crate::smtp::status::EnhancedStatus::REQUIRETLS_NEEDED;
            let reason = requiretls::returned_reason(&domain.to_string(), &refusals.join("; "));
            let verdict = format!("would return the message to its sender ({status}): {reason}");
            return (verdict, Prediction::Bounce { status, reason });
        }
        let verdict = match refusals.is_empty() {
            true => "would wait in the queue: no host to try".to_string(),
            false => format!(
                "would wait in the queue: no host accepted ({})",
                refusals.join("; ")
            ),
        };
        let (stop, dane) = (last, last_dane);
        (verdict, Prediction::Wait { stop, dane })
    });
    if lookup.is_some() {
        let _ = writeln!(out, "\nMTA-STS outcome sts={sts_word}");
    }
    finish(out, domain, verdict, prediction)
}

/// The report with its last line: one verdict that answers the question.
fn finish(mut out: String, domain: &MailDomain, verdict: String, prediction: Prediction) -> Report {
    // The word delivery's attempt line would carry, for one grep across both.
    if !matches!(prediction.dane(), "-" | "off") {
        let _ = writeln!(out, "\nDANE outcome dane={}", prediction.dane());
    }
    let _ = writeln!(out, "\nVerdict: mail to {domain} {verdict}");
    Report {
        text: out,
        prediction,
    }
}

/// One address of a hop up the ladder, as delivery would climb it, with
/// the memory's start read and not written; stops before MAIL. Its verdict
/// line and prediction, or why it would not take the mail.
async fn probe_address<R: Resolve>(
    deliverer: &Deliverer<R>,
    settings: &Settings<R>,
    domain: &MailDomain,
    target: &Target<'_>,
    out: &mut String,
) -> Result<(String, Prediction, &'static str), Stop> {
    let (hop, addr) = (target.hop, target.addr);
    let _ = writeln!(out, "  Address            {}", addr.ip());
    let connector = settings.connectors.for_domain(domain);
    let sts = settings.mta_sts.as_ref();
    let enforce = sts.map(|s| &s.trust).filter(|_| target.sts.enforced());
    let mut ladder = settings.ladder(connector, domain, hop, addr, target.mandatory, enforce);
    ladder.requiretls = target.requiretls;
    let level = ladder.level();
    let start = deliverer
        .memory()
        .peek(level, settings.fallback, &addr.to_string());
    if policy::memory_applies(level) {
        let said = match start.note().as_str() {
            "-" => "nothing remembered".to_string(),
            note => format!("{note} (see `tlsrelay tls-memory list`)"),
        };
        let _ = writeln!(out, "  TLS memory         {said}");
    }
    let mut steps = Steps {
        out,
        fallback: settings.fallback,
        connections: 0,
        failed: false,
        names: [hop.host.to_string(), domain.to_string()],
    };
    match ladder.climb(&start, &mut steps).await {
        Ok(ready) => {
            let word = probe_sts::word(sts, target.sts, hop, &ready);
            let offered = ready.client.capabilities.requiretls;
            let yes_no = if offered { "yes" } else { "no" };
            let _ = writeln!(out, "  REQUIRETLS offered {yes_no}");
            let host = hop.host.to_string();
            let unmet = requiretls::unmet(target.requiretls, &ready.how, offered, &host);
            ready.client.quit().await;
            if let Some(deferral) = unmet {
                let _ = writeln!(out, "  Verdict            would defer: {deferral}");
                return Err(Stop::Deferred(deferral));
            }
            let verdict = host_verdict(&ready.how, &start);
            let _ = writeln!(out, "  Verdict            {verdict}");
            let dane = ready.how.dane().map_or(target.dane, |(word, _)| word);
            let how = ready.how;
            Ok((
                verdict,
                Prediction::Deliver {
                    via: addr,
                    how,
                    dane,
                },
                word,
            ))
        }
        Err(stop) => {
            match &stop {
                Stop::Unreachable(_) => {
                    let _ = writeln!(out, "  Verdict            would try the next host");
                }
                Stop::Deferred(deferral) => {
                    let _ = writeln!(out, "  Verdict            would defer: {deferral}");
                }
            }
            Err(stop)
        }
    }
}

/// A host's verdict when the ladder ends ready for MAIL.
fn host_verdict(how: &How, start: &Start) -> String {
    let memory = match start.skipped.is_empty() {
        true => String::new(),
        false => format!(
            ": the broken-TLS memory skips the rungs above ({}); `tlsrelay tls-memory forget` clears it",
            start.note()
        ),
    };
    match how {
        How::Tls { negotiated, note } => {
            format!("would deliver with {}, {note}{memory}", negotiated.version)
        }
        How::Plaintext(Plaintext::LowerRungs) => {
            "would deliver in plaintext, after TLS failed on every rung above".into()
        }
        How::Plaintext(_) => format!("would deliver in plaintext{memory}"),
    }
}

/// One address of a hop, and what DANE makes mandatory there.
struct Target<'a> {
    hop: &'a Hop,
    addr: SocketAddr,
    mandatory: Option<&'a Mandatory>,
    /// The host's `dane=` word before any handshake.
    dane: &'static str,
    /// MTA-STS for this host (`NotAsked` where DANE governs).
    sts: &'a DomainSts,
    /// The message is flagged REQUIRETLS and the connector enforces it.
    requiretls: bool,
}
