//! The configuration as the daemon uses it. Field docs say what each key
//! does; `config/tlsrelay.toml` shows every key with its default.

use std::path::PathBuf;

use serde::Deserialize;

use super::error::Located;
use super::values::{
    Cidr, DomainName, DomainPattern, Fingerprint, HostPort, HumanDuration, ListenAddr, NamePattern,
    Nameserver, RequireTlsPolicy, Size, TlsLevel, TlsVersion,
};
use crate::smtp::bare_lf::BareLf;

use super::defaults::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub relay: RelayConfig,
    #[serde(default)]
    pub inbound: Vec<InboundConnector>,
    #[serde(default)]
    pub outbound: Vec<OutboundConnector>,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub dns: DnsConfig,
    #[serde(default)]
    pub mta_sts: MtaStsConfig,
    #[serde(default)]
    pub tls_rpt: TlsRptConfig,
    #[serde(default)]
    pub report: ReportConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    /// The file's text, kept to place errors found after loading.
    #[serde(skip)]
    pub(crate) located: Located,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Our name in the greeting, EHLO and `Received: by`.
    pub hostname: DomainName,
    /// STARTTLS-capable SMTP listeners.
    #[serde(default = "default_listen")]
    pub listen: Vec<ListenAddr>,
    /// Implicit-TLS listeners (RFC 8314), such as port 465.
    #[serde(default)]
    pub listen_implicit_tls: Vec<ListenAddr>,
    #[serde(default = "default_spool_dir")]
    pub spool_dir: PathBuf,
    #[serde(default = "default_max_message_size")]
    pub max_message_size: Size,
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// More `Received:` headers than this is a loop: `554 5.4.6`.
    #[serde(default = "default_max_hops")]
    pub max_hops: usize,
    #[serde(default)]
    pub bare_lf: BareLf,
    /// Longest wait for the next complete command line (RFC 5321 §4.5.3.2.7).
    #[serde(default = "default_command_timeout")]
    pub command_timeout: HumanDuration,
    /// Longest silence while message content arrives.
    #[serde(default = "default_data_timeout")]
    pub data_timeout: HumanDuration,
    /// Content slower than this many bytes per second (averaged, after the
    /// first 10 seconds) is cut off: a slow-drip attack, not a client.
    #[serde(default = "default_min_data_rate")]
    pub min_data_rate: Size,
    #[serde(default = "default_tls_handshake_timeout")]
    pub tls_handshake_timeout: HumanDuration,
    /// Bad commands allowed before the session is closed with `421 4.7.0`.
    #[serde(default = "default_max_errors")]
    pub max_errors: u32,
    /// On SIGTERM, how long message transfers in progress may take to finish.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: HumanDuration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Our certificate chain (leaf first), for STARTTLS and as a client certificate.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Write a self-signed pair for `server.hostname` when the files are missing.
    #[serde(default)]
    pub generate_if_missing: bool,
    /// CA files trusted for inbound client certificates.
    #[serde(default)]
    pub client_ca: Vec<PathBuf>,
    #[serde(default = "default_tls_version")]
    pub min_version: TlsVersion,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Mail for these domains is accepted from anyone (the MX role).
    #[serde(default)]
    pub accepted_domains: Vec<DomainPattern>,
}

/// Who is connecting: matched by verified client certificate name, else by IP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConnector {
    pub name: String,
    #[serde(default)]
    pub remote_ips: Vec<Cidr>,
    /// Names the verified client certificate must carry (subject CN or SAN).
    #[serde(default)]
    pub tls_client_cert_names: Vec<NamePattern>,
    #[serde(default)]
    pub sender_domains: Vec<DomainPattern>,
    /// Mail from `sender_domains` is accepted only through this connector.
    #[serde(default)]
    pub restrict_sender_domains: bool,
    /// `530 5.7.0` until the client has issued STARTTLS.
    #[serde(default)]
    pub require_tls: bool,
    /// May send to any domain (the smarthost role).
    #[serde(default)]
    pub allow_relay: bool,
}

/// Where mail goes and how it is protected on the way.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConnector {
    pub name: String,
    pub recipient_domains: Vec<DomainPattern>,
    /// Next hops in order; empty means MX lookup.
    #[serde(default)]
    pub smarthosts: Vec<HostPort>,
    #[serde(default)]
    pub tls: TlsLevel,
    /// For `verify-domain`: names the server certificate must carry;
    /// empty means the recipient domain and its subdomains.
    #[serde(default)]
    pub tls_domains: Vec<NamePattern>,
    /// Extra trust anchors besides the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// For `pinned`: SHA-256 of the certificate or its public key.
    #[serde(default)]
    pub fingerprints: Vec<Fingerprint>,
    /// Present `[tls] cert` as a client certificate.
    #[serde(default)]
    pub client_cert: bool,
    #[serde(default = "default_tls_version")]
    pub min_tls_version: TlsVersion,
    /// What a message flagged REQUIRETLS (RFC 8689) asks of this
    /// connector's hops: `enforce` (default) or `off`.
    #[serde(default)]
    pub requiretls: RequireTlsPolicy,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Waits between attempts; the last one repeats.
    #[serde(default = "default_retry_intervals")]
    pub retry_intervals: Vec<HumanDuration>,
    /// Then the message bounces to its sender.
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
    /// A delayed-delivery notice after this long; `"0s"` turns it off.
    #[serde(default, deserialize_with = "zero_is_off")]
    pub delay_warning_after: DelayWarning,
    /// A notice returns the whole message up to this size, else only its
    /// headers (Postfix's `bounce_size_limit`): a bounce to a forged
    /// sender must not reflect 35 MiB.
    #[serde(default = "default_return_content_limit")]
    pub return_content_limit: Size,
    /// Inbound flow control: at this many messages due and waiting for
    /// a delivery slot, `MAIL` is refused `452 4.3.1`; past half of it
    /// the `250` after the content is delayed. `0`: no limit.
    #[serde(default = "default_backlog_limit")]
    pub backlog_limit: usize,
    /// The longest delay before that `250` (Postfix's `in_flow_delay`);
    /// `"0s"`: no delay.
    #[serde(default = "default_in_flow_delay")]
    pub in_flow_delay: HumanDuration,
}

/// `[queue] delay_warning_after` as the administrator wrote it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DelayWarning {
    /// Not set: 4h, or half of `max_age` when that is shorter, so a short
    /// `max_age` alone is never an error.
    #[default]
    Adaptive,
    /// `"0s"`: no delayed-delivery notices.
    Off,
    /// Set explicitly; must be shorter than `max_age`.
    After(HumanDuration),
}

impl QueueConfig {
    /// When the delayed-delivery notice goes out, if at all.
    pub fn delay_warning(&self) -> Option<HumanDuration> {
        match self.delay_warning_after {
            DelayWarning::Adaptive => {
                Some(default_delay_warning().min(HumanDuration(self.max_age.0 / 2)))
            }
            DelayWarning::Off => None,
            DelayWarning::After(after) => Some(after),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// The port MX hosts are reached on (tests use a high port).
    #[serde(default = "default_mx_port")]
    pub mx_port: u16,
    #[serde(default = "default_max_connections_per_destination")]
    pub max_connections_per_destination: usize,
    /// For `opportunistic`: plaintext when no TLS can be agreed.
    #[serde(default = "default_true")]
    pub opportunistic_fallback: bool,
    /// How long a TLS rung that failed for a host is skipped.
    #[serde(default = "default_broken_tls_memory")]
    pub broken_tls_memory: HumanDuration,
    /// Use DANE (RFC 7672) where an MX host publishes DNSSEC-secure TLSA
    /// records: it upgrades `opportunistic` and `required` (DESIGN.md
    /// §5b). Off for resolvers that strip DNSSEC.
    #[serde(default = "default_true")]
    pub dane: bool,
    /// Send the content by BDAT (RFC 3030) where the next hop offers
    /// CHUNKING; off: always DATA.
    #[serde(default = "default_true")]
    pub chunking: bool,
    /// Multiplies every SMTP phase deadline of RFC 5321 §4.5.3.2 (5 min
    /// for the greeting, MAIL and RCPT, 2 for EHLO and DATA, 10 after the
    /// end of data). Below 1 a silent next hop is given up on sooner;
    /// the tests use it so that a stalled phase times out in a second.
    #[serde(default = "default_phase_timeout_scale")]
    pub phase_timeout_scale: f64,
}

/// `[mta_sts]`: apply the MTA-STS policies (RFC 8461) that recipient
/// domains publish (DESIGN.md §5b).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtaStsConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Extra CAs trusted, besides the webpki roots, for the policy fetch
    /// and for MX certificates under an MTA-STS policy (private PKI, tests).
    #[serde(default, deserialize_with = "empty_is_none")]
    pub ca_file: Option<PathBuf>,
    /// The port policies are fetched from: 443 (RFC 8461 §3.3); tests
    /// use a high port, as `[delivery] mx_port` does for SMTP.
    #[serde(default = "default_https_port")]
    pub https_port: u16,
    /// The longest a policy fetch may take (connect, TLS, request, body).
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout: HumanDuration,
}

/// `[tls_rpt]`: the RFC 8460 aggregate reports this relay sends.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsRptConfig {
    /// Default false; true needs `organization_name`.
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub organization_name: String,
    /// How report receivers reach us (`mailto:` or a URL).
    #[serde(default)]
    pub contact_info: String,
    /// Our name in reports and in their file names; empty: `[server] hostname`.
    #[serde(default)]
    pub submitter: String,
}

/// `[report]`: the per-domain transit records behind `tlsrelay report`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// How long per-day records are kept.
    #[serde(default = "default_report_history")]
    pub history: HumanDuration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Empty: the servers of /etc/resolv.conf.
    #[serde(default)]
    pub nameservers: Vec<Nameserver>,
    /// Look up clients' PTR names for the Received header.
    #[serde(default = "default_true")]
    pub reverse_lookups: bool,
    /// How long one query waits for a name server's answer before it is
    /// asked again (resolv.conf's `options timeout:`); absent: resolv.conf's
    /// value, else 5 s. A lookup that gets no answer defers the mail, so
    /// this bounds how long a silent name server holds an attempt up.
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Validate DNSSEC in process (DANE needs it; an upstream AD bit is
    /// never trusted).
    #[serde(default = "default_true")]
    pub dnssec: bool,
    /// DNSKEY records to validate from; absent or `""`: the IANA root keys
    /// that hickory ships.
    #[serde(default, deserialize_with = "empty_is_none")]
    pub trust_anchor: Option<PathBuf>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: Vec::new(),
            reverse_lookups: true,
            timeout: None,
            dnssec: true,
            trust_anchor: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Prometheus metrics endpoint; absent or `""` turns it off.
    #[serde(default, deserialize_with = "empty_is_off")]
    pub metrics_listen: Option<ListenAddr>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            generate_if_missing: false,
            client_ca: Vec::new(),
            min_version: default_tls_version(),
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            retry_intervals: default_retry_intervals(),
            max_age: default_max_age(),
            delay_warning_after: DelayWarning::Adaptive,
            return_content_limit: default_return_content_limit(),
            backlog_limit: default_backlog_limit(),
            in_flow_delay: default_in_flow_delay(),
        }
    }
}

impl Default for MtaStsConfig {
    fn default() -> Self {
        MtaStsConfig {
            enabled: true,
            ca_file: None,
            https_port: default_https_port(),
            fetch_timeout: default_fetch_timeout(),
        }
    }
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            history: default_report_history(),
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            connect_timeout: default_connect_timeout(),
            mx_port: default_mx_port(),
            max_connections_per_destination: default_max_connections_per_destination(),
            opportunistic_fallback: true,
            broken_tls_memory: default_broken_tls_memory(),
            dane: true,
            chunking: true,
            phase_timeout_scale: default_phase_timeout_scale(),
        }
    }
}
