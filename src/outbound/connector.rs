//! The outbound connectors as delivery uses them: each with its trust
//! store, and the default one (no connector matches: MX lookup,
//! opportunistic TLS, the webpki roots) made once when the configuration
//! is loaded, so that every attempt has a connector and nothing asks
//! "which default?" again.

use rustls::pki_types::UnixTime;

use super::route::domain_pattern;
use crate::config::domain::MailDomain;
use crate::config::most_specific;
use crate::config::values::{DomainPattern, Host, RequireTlsPolicy, TlsLevel, TlsVersion};
use crate::config::OutboundConnector;
use crate::tls::trust::TrustStore;
use crate::tls::verify::{verify, Checks, Expected};
use rustls::pki_types::CertificateDer;

/// One connector and the anchors its chains are verified against.
pub struct Connector {
    pub settings: OutboundConnector,
    /// The webpki roots plus the connector's `ca_file`.
    pub trust: TrustStore,
    /// The default route, not a `[[outbound]]` table.
    pub is_default: bool,
}

impl Connector {
    /// Its name in the log and the metrics: `-` for the default.
    pub fn label(&self) -> &str {
        match self.is_default {
            true => "-",
            false => &self.settings.name,
        }
    }

    pub fn level(&self) -> TlsLevel {
        self.settings.tls
    }

    /// What the certificate `chain` (leaf first) from `host` is worth
    /// for mail to `domain` under this connector, now.
    pub fn checks(&self, chain: &[CertificateDer<'_>], host: &Host, domain: &MailDomain) -> Checks {
        let expected = Expected {
            trust: &self.trust,
            host,
            domain,
            tls_domains: &self.settings.tls_domains,
            fingerprints: &self.settings.fingerprints,
        };
        verify(chain, &expected, UnixTime::now())
    }
}

/// Every configured connector, and the default.
pub struct Connectors {
    connectors: Vec<Connector>,
    default: Connector,
}

impl Connectors {
    /// Reads every connector's `ca_file`; an unreadable one is an error.
    pub fn new(configured: &[OutboundConnector]) -> Result<Connectors, String> {
        let mut connectors = Vec::with_capacity(configured.len());
        for settings in configured {
            let paths: Vec<_> = settings.ca_file.iter().cloned().collect();
            connectors.push(Connector {
                trust: TrustStore::with_ca_files(&paths).map_err(|e| e.to_string())?,
                settings: settings.clone(),
                is_default: false,
            });
        }
        Ok(Connectors {
            connectors,
            default: Connector {
                settings: OutboundConnector {
                    name: "(default: MX lookup, opportunistic)".into(),
                    recipient_domains: vec![DomainPattern::Any],
                    smarthosts: Vec::new(),
                    tls: TlsLevel::Opportunistic,
                    tls_domains: Vec::new(),
                    ca_file: None,
                    fingerprints: Vec::new(),
                    client_cert: false,
                    min_tls_version: TlsVersion::Tls12,
                    requiretls: RequireTlsPolicy::Enforce,
                },
                trust: TrustStore::webpki_roots(),
                is_default: true,
            },
        })
    }

    /// The connector for mail to `domain`: the most specific pattern, as
    /// [`super::route::connector_for`] decides.
    pub fn for_domain(&self, domain: &MailDomain) -> &Connector {
        let pattern = domain_pattern(domain);
        most_specific(&self.connectors, |c| &c.settings, &pattern).unwrap_or(&self.default)
    }
}
