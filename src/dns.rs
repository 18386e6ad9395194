//! DNS, behind one resolver configured from `[dns]`: reverse lookups of
//! clients now, MX routing next.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use crate::config::DnsConfig;

/// The relay's resolver. Cheap to clone.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

#[derive(Debug, thiserror::Error)]
#[error("DNS resolver: {0}")]
pub struct DnsError(String);

impl Dns {
    /// `[dns] nameservers`, or the system's when the list is empty.
    pub fn new(config: &DnsConfig) -> Result<Dns, DnsError> {
        let builder = if config.nameservers.is_empty() {
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
        let resolver = builder.build().map_err(|e| DnsError(e.to_string()))?;
        Ok(Dns { resolver })
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
