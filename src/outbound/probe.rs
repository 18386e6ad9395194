//! `tlsrelay probe DOMAIN`: what delivery to a domain would do, host by
//! host, without sending any mail: addresses, STARTTLS offered, the TLS
//! the top rung negotiates, the certificate, which TLS levels would accept
//! it, and the verdict under the configured connector (DESIGN.md §2).

use std::fmt::Write;
use std::net::IpAddr;

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::deliver::Deliverer;
use super::policy::{self, Checks, Failure, Rung, Step};
use super::route::{hops, Hop, Hops, Resolve};
use crate::config::domain::MailDomain;
use crate::config::values::{Host, TlsLevel};

/// The report for one domain, as text.
pub async fn probe<R: Resolve>(
    deliverer: &Deliverer<R>,
    domain: &MailDomain,
    port: Option<u16>,
) -> String {
    let mut out = String::new();
    let route = deliverer.route(domain);
    let level = route.connector.map_or(TlsLevel::Opportunistic, |c| c.tls);
    let connector = route
        .connector
        .map_or("(default: MX lookup, opportunistic)".to_string(), |c| {
            format!("\"{}\"", c.name)
        });
    let _ = writeln!(
        out,
        "Domain       {domain}\nConnector    {connector}\nTLS level    {level}"
    );
    let mx_port = port.unwrap_or(deliverer.mx_port);
    let hop_list = match hops(
        &deliverer.resolver,
        route.connector,
        domain,
        mx_port,
        |_| {},
    )
    .await
    {
        Ok(Hops::Try(list)) => list,
        Ok(Hops::Fail { status, reason }) => {
            let _ = writeln!(
                out,
                "\nVerdict: mail to {domain} would bounce ({status}): {reason}"
            );
            return out;
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "\nVerdict: mail to {domain} would wait in the queue: {e}"
            );
            return out;
        }
    };
    // Why each host tried would not take the mail, for the overall verdict.
    let mut refusals = Vec::new();
    let mut overall = None;
    for hop in hop_list {
        let hop = Hop {
            port: port.unwrap_or(hop.port),
            ..hop
        };
        let _ = writeln!(out, "\nHost {}:{}", hop.host, hop.port);
        let addresses: Vec<IpAddr> = match &hop.host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(name) => match deliverer.resolver.addresses(name.as_str()).await {
                Ok(list) => list,
                Err(e) => {
                    let _ = writeln!(out, "  Addresses          lookup failed: {e}");
                    refusals.push(format!("{}: lookup failed: {e}", hop.host));
                    continue;
                }
            },
        };
        if addresses.is_empty() {
            let _ = writeln!(out, "  Addresses          none");
            refusals.push(format!("{}: no address", hop.host));
        }
        for ip in addresses {
            let _ = writeln!(out, "  Address            {ip}");
            let verdict = probe_address(deliverer, &route, &hop, ip, level, &mut out).await;
            let server = match &hop.host {
                Host::Ip(_) => format!("{ip}:{}", hop.port),
                Host::Name(name) => format!("{name}:{} [{ip}]", hop.port),
            };
            match verdict {
                Ok(verdict) => {
                    overall.get_or_insert(format!("{verdict} via {server}"));
                }
                Err(why) => refusals.push(format!("{server}: {why}")),
            }
        }
    }
    // One line that answers the question asked, whatever the hosts said:
    // the first host that would take the mail, as delivery goes down the
    // list in the same order, or why none would.
    let verdict = overall.unwrap_or_else(|| match refusals.is_empty() {
        true => "would wait in the queue: no host to try".to_string(),
        false => format!(
            "would wait in the queue: no host accepted ({})",
            refusals.join("; ")
        ),
    });
    let _ = writeln!(out, "\nVerdict: mail to {domain} {verdict}");
    out
}

/// Probes one address of a host; returns its verdict when it would take
/// the mail, or why not.
async fn probe_address<R: Resolve>(
    deliverer: &Deliverer<R>,
    route: &super::deliver::Route<'_>,
    hop: &Hop,
    ip: IpAddr,
    level: TlsLevel,
    out: &mut String,
) -> Result<String, String> {
    let client = match deliverer
        .connect(std::net::SocketAddr::new(ip, hop.port))
        .await
    {
        Ok(client) => client,
        Err(e) => {
            let _ = writeln!(
                out,
                "  Connection         failed: {e}\n  Verdict            would try the next host"
            );
            return Err(e);
        }
    };
    let offered = client.capabilities.starttls;
    let _ = writeln!(
        out,
        "  STARTTLS offered   {}",
        if offered { "yes" } else { "no" }
    );
    if !offered {
        let _ = writeln!(
            out,
            "  Levels accepting   none; opportunistic delivers in plaintext"
        );
    }
    let server = std::net::SocketAddr::new(ip, hop.port).to_string();
    let start = deliverer.memory.peek(level, deliverer.fallback, &server);
    if policy::memory_applies(level) {
        let said = match start.note().as_str() {
            "-" => "nothing remembered".to_string(),
            note => format!("{note} (see `tlsrelay tls-memory list`)"),
        };
        let _ = writeln!(out, "  TLS memory         {said}");
    }
    match policy::after_ehlo(level, Rung::Modern, offered) {
        Step::Plaintext => {
            client.quit().await;
            return Ok(host_verdict(out, "would deliver in plaintext".into()));
        }
        Step::Defer { reason, .. } => {
            client.quit().await;
            let _ = writeln!(out, "  Verdict            would defer: {reason}");
            return Err(reason);
        }
        _ => {}
    }
    let upgraded = match deliverer.upgrade(client, hop, Rung::Modern, route).await {
        Ok(upgraded) => upgraded,
        Err(failure) => {
            return verdict_after_failure(level, deliverer.fallback, &failure, &start, out);
        }
    };
    let (negotiated, chain, checks) = (upgraded.negotiated, upgraded.chain, upgraded.checks);
    upgraded.client.quit().await;
    let group = negotiated.group.as_deref().unwrap_or("unknown");
    let _ = writeln!(
        out,
        "  TLS                {} {} key exchange {group}",
        negotiated.version, negotiated.cipher
    );
    for (i, cert) in chain.iter().enumerate() {
        let _ = writeln!(out, "  Certificate {}      {}", i + 1, describe(cert));
    }
    let _ = writeln!(
        out,
        "  Chain              {}",
        result(&checks.chain, "verified")
    );
    let _ = writeln!(
        out,
        "  Name               {}",
        result(&checks.host, "matches")
    );
    let _ = writeln!(
        out,
        "  Domain             {}",
        result(&checks.domain, "matches")
    );
    let accepting: Vec<String> = levels_accepting(&checks)
        .iter()
        .map(ToString::to_string)
        .collect();
    let _ = writeln!(out, "  Levels accepting   {}", accepting.join(", "));
    match (
        memory_verdict(&start),
        policy::after_handshake(level, &checks),
    ) {
        (Some(skipped), _) => Ok(host_verdict(out, skipped)),
        (None, Step::Deliver { note }) => Ok(host_verdict(
            out,
            format!("would deliver with {}, {note}", negotiated.version),
        )),
        (None, Step::Defer { reason, .. }) => {
            let _ = writeln!(out, "  Verdict            would defer: {reason}");
            Err(reason)
        }
        (None, other) => Ok(host_verdict(out, format!("{other:?}"))),
    }
}

/// Writes a host's verdict line, and returns it for the overall verdict.
fn host_verdict(out: &mut String, verdict: String) -> String {
    let _ = writeln!(out, "  Verdict            {verdict}");
    verdict
}

/// What delivery does when the memory moves the start of the ladder,
/// whatever the top rung would do now.
fn memory_verdict(start: &policy::Start) -> Option<String> {
    let skipped = match start.rung {
        Rung::Modern => return None,
        Rung::Tls12 => "would try TLS 1.2 only first",
        Rung::Plaintext => "would deliver in plaintext",
    };
    Some(format!(
        "{skipped}: the broken-TLS memory skips the rungs above ({}); `tlsrelay tls-memory forget` clears it",
        start.note()
    ))
}

fn verdict_after_failure(
    level: TlsLevel,
    fallback: bool,
    failure: &Failure,
    start: &policy::Start,
    out: &mut String,
) -> Result<String, String> {
    let _ = writeln!(out, "  TLS                failed: {failure}");
    // The forced levels try the top rung only; opportunistic goes on.
    let lower = if fallback {
        "TLS 1.2 only, then plaintext"
    } else {
        "TLS 1.2 only"
    };
    let _ = writeln!(
        out,
        "  Levels accepting   none; opportunistic tries {lower}"
    );
    let step = policy::after_failure(level, Rung::Modern, fallback, failure);
    let verdict = match (memory_verdict(start), step) {
        (Some(skipped), _) => skipped,
        (None, Step::NextRung) => format!("would retry with {lower}"),
        (None, Step::Defer { reason, .. }) => {
            let _ = writeln!(out, "  Verdict            would defer: {reason}");
            return Err(reason);
        }
        (None, other) => format!("{other:?}"),
    };
    Ok(host_verdict(out, verdict))
}

/// The levels whose checks this certificate passes; `verify-domain` with
/// the connector's `tls_domains`, `pinned` with its fingerprints.
fn levels_accepting(checks: &Checks) -> Vec<TlsLevel> {
    [
        TlsLevel::Opportunistic,
        TlsLevel::Required,
        TlsLevel::VerifyCa,
        TlsLevel::VerifyHost,
        TlsLevel::VerifyDomain,
    ]
    .into_iter()
    .filter(|level| {
        matches!(
            policy::after_handshake(*level, checks),
            Step::Deliver { .. }
        )
    })
    .chain(checks.pinned.then_some(TlsLevel::Pinned))
    .collect()
}

fn result(check: &Result<(), String>, ok: &str) -> String {
    match check {
        Ok(()) => ok.to_string(),
        Err(why) => format!("no: {why}"),
    }
}

/// Subject, issuer and expiry in one line.
fn describe(cert: &CertificateDer<'_>) -> String {
    match X509Certificate::from_der(cert) {
        Ok((_, parsed)) => format!(
            "{} (issuer {}; expires {})",
            crate::tls::x509::dn(parsed.subject()),
            crate::tls::x509::dn(parsed.issuer()),
            crate::tls::x509::utc(parsed.validity().not_after.to_datetime())
        ),
        Err(_) => "unreadable".to_string(),
    }
}
