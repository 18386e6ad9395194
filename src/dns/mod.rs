//! DNS, configured from `[dns]`: reverse lookups of clients, the MX and
//! address lookups of routing, and the DNSSEC-validated lookups of DANE.
//!
//! Two resolvers share the name servers: a plain one (PTR names, and
//! routing where DANE is not asked: `[delivery] dane = false`, or a
//! connector level DANE does not govern) and, with `[dns] dnssec = true`,
//! a validating one ([`secure`]) whose trust anchor is `[dns]
//! trust_anchor` ([`anchor`]), which routing uses where DANE is asked.
//! Each caches on its own.

pub mod anchor;
pub mod secure;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, Record};
use hickory_resolver::{ResolverBuilder, TokioResolver};

use crate::config::DnsConfig;
use crate::outbound::dane::{Checked, TlsaAnswer};
use crate::outbound::route::{LookupError, MxAnswer};

/// The relay's resolvers. Cheap to clone.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    /// `None` with `[dns] dnssec = false`.
    validating: Option<TokioResolver>,
    /// The zone of the trust anchor (`.` for the IANA root keys).
    anchor_zone: String,
    denials: Arc<secure::DenialCache>,
}

#[derive(Debug, thiserror::Error)]
#[error("DNS resolver: {0}")]
pub struct DnsError(String);

impl Dns {
    /// `[dns] nameservers`, or the system's when the list is empty, each
    /// query waiting `[dns] timeout` when set (else resolv.conf's or 5 s).
    pub fn new(config: &DnsConfig) -> Result<Dns, DnsError> {
        let resolver = builder(config)?
            .build()
            .map_err(|e| DnsError(e.to_string()))?;
        let validating = match config.dnssec {
            false => None,
            true => {
                let anchors = anchor::load(config.trust_anchor.as_deref())
                    .map_err(|e| DnsError(e.to_string()))?;
                let resolver = builder(config)?
                    .with_trust_anchor(anchors)
                    .build()
                    .map_err(|e| DnsError(e.to_string()))?;
                Some(resolver)
            }
        };
        Ok(Dns {
            resolver,
            validating,
            anchor_zone: anchor::zone(config.trust_anchor.as_deref()),
            denials: Arc::default(),
        })
    }

    /// The PTR name of `ip`, if it has one and DNS answers within `limit`.
    pub async fn reverse(&self, ip: IpAddr, limit: Duration) -> Option<String> {
        let lookup = tokio::time::timeout(limit, self.resolver.reverse_lookup(ip))
            .await
            .ok()?
            .ok()?;
        lookup
            .answers()
            .iter()
            .find_map(|record| match &record.data {
                RData::PTR(name) => Some(name.0.to_string().trim_end_matches('.').to_string()),
                _ => None,
            })
    }
}

/// A resolver builder for `[dns]`'s name servers and timeout.
fn builder(config: &DnsConfig) -> Result<ResolverBuilder<TokioRuntimeProvider>, DnsError> {
    let mut builder = if config.nameservers.is_empty() {
        TokioResolver::builder_tokio()
            .map_err(|e| DnsError(format!("reading /etc/resolv.conf: {e}")))?
    } else {
        let mut resolver_config = ResolverConfig::default();
        for server in &config.nameservers {
            let mut name_server = NameServerConfig::udp_and_tcp(server.0.ip());
            for connection in &mut name_server.connections {
                connection.port = server.0.port();
            }
            resolver_config.add_name_server(name_server);
        }
        TokioResolver::builder_with_config(resolver_config, TokioRuntimeProvider::default())
    };
    if let Some(timeout) = config.timeout {
        builder.options_mut().timeout = timeout.0;
    }
    Ok(builder)
}

/// The MX answer that an answer section makes.
fn mx_answer(answers: &[Record]) -> MxAnswer {
    let records: Vec<(u16, String)> = answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::MX(mx) => Some((mx.preference, mx.exchange.to_string())),
            _ => None,
        })
        .collect();
    // RFC 7505: a single "MX 0 ." means no mail at all.
    if records.len() == 1 && records[0].1 == "." {
        return MxAnswer::NullMx;
    }
    match records.is_empty() {
        true => MxAnswer::NoMx,
        false => MxAnswer::Hosts(records),
    }
}

/// Each TXT record of an answer section as one string: its
/// character-strings joined (RFC 8461 §3.1, RFC 7208 §3.3).
fn txt_strings(answers: &[Record]) -> Vec<String> {
    answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}

impl crate::outbound::route::Resolve for Dns {
    async fn mx(&self, domain: &str) -> Result<MxAnswer, LookupError> {
        // Absolute: the search list of resolv.conf must never apply to mail routing.
        let name = format!("{}.", domain.trim_end_matches('.'));
        match self.resolver.mx_lookup(name.as_str()).await {
            Ok(lookup) => Ok(mx_answer(lookup.answers())),
            Err(e) if e.is_nx_domain() => Ok(MxAnswer::NxDomain),
            Err(e) if e.is_no_records_found() => Ok(MxAnswer::NoMx),
            Err(e) => Err(LookupError {
                name: domain.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, LookupError> {
        let name = format!("{}.", host.trim_end_matches('.'));
        match self.resolver.lookup_ip(name.as_str()).await {
            Ok(lookup) => Ok(lookup.iter().collect()),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(LookupError {
                name: host.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        let absolute = format!("{}.", name.trim_end_matches('.'));
        match self.resolver.txt_lookup(absolute.as_str()).await {
            Ok(lookup) => Ok(txt_strings(lookup.answers())),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(LookupError {
                name: name.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    fn validates(&self) -> bool {
        Dns::validates(self)
    }

    async fn mx_checked(&self, domain: &str) -> Checked<MxAnswer> {
        Dns::mx_checked(self, domain).await
    }

    async fn addresses_checked(&self, host: &str) -> Checked<Vec<IpAddr>> {
        Dns::addresses_checked(self, host).await
    }

    async fn tlsa(&self, host: &str, port: u16) -> TlsaAnswer {
        Dns::tlsa(self, host, port).await
    }
}
