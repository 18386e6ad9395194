//! Cross-field checks: the mistakes that each key alone cannot show.
//! Every failure names the key to change and, where one exists, what would
//! be right. The checks of the relay networks are in `relay_networks`.

use std::collections::HashMap;
use std::time::Duration;

use super::error::{ConfigError, ConfigErrors};
use super::model::{Config, DelayWarning, OutboundConnector};
use super::values::{DomainPattern, TlsLevel};

mod relay_networks;
mod reports;

use relay_networks::open_relay;
pub(super) use relay_networks::warnings;

struct Checker<'a> {
    config: &'a Config,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn fail(&mut self, key: impl AsRef<str>, message: impl Into<String>) {
        let error = self.config.error(key.as_ref(), message);
        self.errors.push(error);
    }
}

/// Each check with the top-level sections it reads.
type Check = (fn(&mut Checker), &'static [&'static str]);

const CHECKS: [Check; 8] = [
    (server, &["server"]),
    (tls, &["tls", "server", "inbound", "outbound"]),
    (relay, &["relay", "outbound"]),
    (inbound, &["inbound", "tls"]),
    (open_relay, &["inbound"]),
    (outbound, &["outbound", "delivery", "dns"]),
    (queue_and_delivery, &["queue", "delivery", "dns"]),
    (reports::tls_rpt, &["tls_rpt"]),
];

/// Runs every check that reads none of the `refused` sections (those
/// where serde refused a key, which was taken out: a check there would
/// judge a configuration the administrator did not write); errors come
/// back in file order.
pub(super) fn check(config: &Config, refused: &[&str]) -> Result<(), ConfigErrors> {
    let mut checker = Checker {
        config,
        errors: Vec::new(),
    };
    for (check, reads) in CHECKS {
        if !reads.iter().any(|section| refused.contains(section)) {
            check(&mut checker);
        }
    }
    let mut errors = checker.errors;
    if errors.is_empty() {
        return Ok(());
    }
    errors.sort_by_key(|e| e.position);
    errors.dedup();
    Err(ConfigErrors(errors))
}

fn server(c: &mut Checker) {
    let server = &c.config.server;
    if server.listen.is_empty() && server.listen_implicit_tls.is_empty() {
        c.fail(
            "server.listen",
            "no listeners: give at least one address, for example [\"0.0.0.0:25\"]",
        );
    }
    let mut seen = HashMap::new();
    let all = (server
        .listen
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("server.listen[{i}]"), a)))
    .chain(
        server
            .listen_implicit_tls
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("server.listen_implicit_tls[{i}]"), a)),
    );
    // Port 0 asks the system for a free port each time: never a collision.
    for (key, addr) in all.filter(|(_, a)| a.0.port() != 0) {
        if let Some(first) = seen.insert(addr.0, key.clone()) {
            c.fail(&key, format!("{} is already listed at {first}", addr.0));
        }
    }
    for (key, value) in [
        ("server.max_recipients", server.max_recipients),
        ("server.max_connections", server.max_connections),
        (
            "server.max_connections_per_ip",
            server.max_connections_per_ip,
        ),
        ("server.max_hops", server.max_hops),
    ] {
        if value == 0 {
            c.fail(key, "must be at least 1");
        }
    }
    for (key, value) in [
        ("server.command_timeout", server.command_timeout),
        ("server.data_timeout", server.data_timeout),
        ("server.tls_handshake_timeout", server.tls_handshake_timeout),
    ] {
        if value.0 < Duration::from_secs(1) {
            c.fail(key, "must be at least 1s");
        }
    }
    if server.max_errors == 0 {
        c.fail("server.max_errors", "must be at least 1");
    }
    if server.max_message_size.0 == 0 {
        c.fail(
            "server.max_message_size",
            "must be larger than 0, for example \"35MiB\"",
        );
    }
    if server.max_connections_per_ip > server.max_connections {
        c.fail(
            "server.max_connections_per_ip",
            format!(
                "is larger than server.max_connections ({})",
                server.max_connections
            ),
        );
    }
}

/// Everything that needs our own certificate names `[tls] cert` and `key`.
fn tls(c: &mut Checker) {
    let config = c.config;
    let tls = &config.tls;
    match (&tls.cert, &tls.key) {
        (Some(_), None) => c.fail(
            "tls.cert",
            "tls.key is missing: a certificate needs its private key",
        ),
        (None, Some(_)) => c.fail(
            "tls.key",
            "tls.cert is missing: a key needs its certificate",
        ),
        _ => {}
    }
    let have_identity = tls.cert.is_some() && tls.key.is_some();
    if have_identity {
        return;
    }
    let needs = "needs our certificate: set tls.cert and tls.key";
    if tls.generate_if_missing {
        c.fail(
            "tls.generate_if_missing",
            "needs tls.cert and tls.key: the paths to write the certificate and key to",
        );
    }
    if !config.server.listen_implicit_tls.is_empty() {
        c.fail(
            "server.listen_implicit_tls",
            format!("implicit TLS {needs}"),
        );
    }
    for (i, connector) in config.inbound.iter().enumerate() {
        if connector.require_tls {
            c.fail(
                format!("inbound[{i}].require_tls"),
                format!("requiring STARTTLS {needs}"),
            );
        }
        if !connector.tls_client_cert_names.is_empty() {
            c.fail(
                format!("inbound[{i}].tls_client_cert_names"),
                format!("client certificates arrive over STARTTLS, which {needs}"),
            );
        }
    }
    for (i, connector) in config.outbound.iter().enumerate() {
        if connector.client_cert {
            c.fail(
                format!("outbound[{i}].client_cert"),
                format!("presenting a client certificate {needs}"),
            );
        }
    }
}

fn relay(c: &mut Checker) {
    let config = c.config;
    let mut seen = HashMap::new();
    for (i, pattern) in config.relay.accepted_domains.iter().enumerate() {
        let key = format!("relay.accepted_domains[{i}]");
        if *pattern == DomainPattern::Any {
            c.fail(&key, "\"*\" would accept mail for every domain from anyone (an open relay); list your domains");
            continue;
        }
        if let Some(first) = seen.insert(pattern, i) {
            c.fail(
                &key,
                format!("{pattern} is already listed at relay.accepted_domains[{first}]"),
            );
            continue;
        }
        // An accepted address literal is (usually) this relay's own
        // address: delivered straight to it, mail would come back here.
        let lookup = match pattern {
            DomainPattern::Literal(_) => "straight to that address, which is this relay",
            _ => "by MX lookup, which points back here",
        };
        match super::connector_covering(&config.outbound, pattern) {
            Some(connector) if !connector.smarthosts.is_empty() => {}
            Some(connector) => c.fail(&key, format!(
                "mail for {pattern} is accepted here and outbound connector \"{}\" would deliver it {lookup} (mail loop); give that connector smarthosts, such as your internal server",
                connector.name
            )),
            None => c.fail(&key, format!(
                "mail for {pattern} is accepted here and would be delivered {lookup} (mail loop); add an [[outbound]] connector with recipient_domains = [\"{pattern}\"] and smarthosts = your internal server"
            )),
        }
    }
}

fn check_names<'a>(c: &mut Checker, section: &str, names: impl Iterator<Item = &'a String>) {
    let mut seen = HashMap::new();
    for (i, name) in names.enumerate() {
        let key = format!("{section}[{i}].name");
        if name.trim().is_empty() {
            c.fail(
                &key,
                "a connector needs a name (it appears in logs and Received headers)",
            );
        } else if let Some(first) = seen.insert(name.clone(), i) {
            c.fail(
                &key,
                format!("connector name \"{name}\" is already used by {section}[{first}]"),
            );
        }
    }
}

fn inbound(c: &mut Checker) {
    let config = c.config;
    check_names(c, "inbound", config.inbound.iter().map(|i| &i.name));
    for (i, connector) in config.inbound.iter().enumerate() {
        let key = |field: &str| format!("inbound[{i}].{field}");
        if connector.remote_ips.is_empty() && connector.tls_client_cert_names.is_empty() {
            c.fail(
                key("name"),
                "this connector matches no client: set remote_ips or tls_client_cert_names",
            );
        }
        if connector.restrict_sender_domains && connector.sender_domains.is_empty() {
            c.fail(
                key("restrict_sender_domains"),
                "needs sender_domains: the domains only this connector may send from",
            );
        }
        if !connector.tls_client_cert_names.is_empty() && config.tls.client_ca.is_empty() {
            c.fail(key("tls_client_cert_names"), "client certificates are verified against tls.client_ca, which is empty: add the partner's CA file");
        }
    }
}

fn outbound(c: &mut Checker) {
    let config = c.config;
    check_names(c, "outbound", config.outbound.iter().map(|o| &o.name));
    let mut claimed: HashMap<&DomainPattern, &str> = HashMap::new();
    for (i, connector) in config.outbound.iter().enumerate() {
        let key = |field: &str| format!("outbound[{i}].{field}");
        if connector.recipient_domains.is_empty() {
            c.fail(
                key("recipient_domains"),
                "empty: list the domains this connector carries, or \"*\" for all others",
            );
        }
        for (j, pattern) in connector.recipient_domains.iter().enumerate() {
            if let Some(first) = claimed.insert(pattern, &connector.name) {
                c.fail(key(&format!("recipient_domains[{j}]")), format!(
                    "{pattern} is already claimed by outbound connector \"{first}\"; a domain can have one route"
                ));
            }
        }
        match (connector.tls, connector.fingerprints.is_empty()) {
            (TlsLevel::Pinned, true) => c.fail(key("fingerprints"), "tls = \"pinned\" needs fingerprints: the \"sha256:…\" values from `tlsrelay cert-info`"),
            (level, false) if level != TlsLevel::Pinned => c.fail(key("fingerprints"), format!(
                "fingerprints are only used with tls = \"pinned\" (this connector has tls = \"{level}\")"
            )),
            _ => {}
        }
        if !connector.tls_domains.is_empty() && connector.tls != TlsLevel::VerifyDomain {
            c.fail(key("tls_domains"), format!(
                "tls_domains are only used with tls = \"verify-domain\" (this connector has tls = \"{}\")",
                connector.tls
            ));
        }
        if connector.tls == TlsLevel::Dane {
            dane_connector(c, &key, connector);
        }
        if connector.tls == TlsLevel::None {
            if connector.client_cert {
                c.fail(
                    key("client_cert"),
                    "a client certificate needs TLS, and this connector has tls = \"none\"",
                );
            }
            if connector.ca_file.is_some() {
                c.fail(
                    key("ca_file"),
                    "trust anchors are unused with tls = \"none\"",
                );
            }
        }
    }
}

/// `tls = "dane"` authenticates MX hosts by their DNSSEC-secure TLSA
/// records (DESIGN.md §5b): it needs validation and DANE on, and an MX
/// route (a smarthost has no MX answer for DNSSEC to vouch for).
fn dane_connector(c: &mut Checker, key: &dyn Fn(&str) -> String, connector: &OutboundConnector) {
    if !connector.smarthosts.is_empty() {
        c.fail(
            key("smarthosts"),
            "tls = \"dane\" authenticates the MX hosts of the recipient domain by their TLSA records: remove the smarthosts, or use tls = \"verify-host\" or \"pinned\" for a smarthost",
        );
    }
    if !c.config.delivery.dane {
        c.fail(
            key("tls"),
            "tls = \"dane\" needs [delivery] dane = true (it is off, so every message would wait in the queue)",
        );
    }
    if !c.config.dns.dnssec {
        c.fail(
            key("tls"),
            "tls = \"dane\" needs [dns] dnssec = true: without DNSSEC validation no TLSA record can be trusted",
        );
    }
}

fn queue_and_delivery(c: &mut Checker) {
    let queue = &c.config.queue;
    let delivery = &c.config.delivery;
    if queue.retry_intervals.is_empty() {
        c.fail(
            "queue.retry_intervals",
            "give at least one interval, for example [\"5m\"]",
        );
    }
    for (i, interval) in queue.retry_intervals.iter().enumerate() {
        if interval.0 < Duration::from_secs(1) {
            c.fail(
                format!("queue.retry_intervals[{i}]"),
                "a retry interval must be at least 1s",
            );
        }
    }
    if queue.max_age.0 == Duration::ZERO {
        c.fail(
            "queue.max_age",
            "must be longer than 0s, for example \"5d\"",
        );
    }
    if let DelayWarning::After(warning) = queue.delay_warning_after {
        if warning >= queue.max_age {
            c.fail(
                "queue.delay_warning_after",
                format!(
                    "is not shorter than queue.max_age ({}): the warning would never be sent",
                    queue.max_age
                ),
            );
        }
    }
    if queue.in_flow_delay.0 > Duration::from_secs(10) {
        c.fail(
            "queue.in_flow_delay",
            "must be at most 10s (as Postfix's): a client waits that long for each message's 250",
        );
    }
    if delivery.connect_timeout.0 == Duration::ZERO {
        c.fail(
            "delivery.connect_timeout",
            "must be longer than 0s, for example \"30s\"",
        );
    }
    if c.config
        .dns
        .timeout
        .is_some_and(|t| t.0 < Duration::from_secs(1))
    {
        c.fail("dns.timeout", "must be at least 1s, for example \"5s\"");
    }
    if delivery.mx_port == 0 {
        c.fail(
            "delivery.mx_port",
            "use a port from 1 to 65535 (25 on the internet)",
        );
    }
    let scale = delivery.phase_timeout_scale;
    if !(scale.is_finite() && scale > 0.0 && scale <= 10.0) {
        c.fail(
            "delivery.phase_timeout_scale",
            "must be more than 0 and at most 10 (1.0 keeps the RFC 5321 deadlines)",
        );
    }
    if delivery.max_connections_per_destination == 0 {
        c.fail(
            "delivery.max_connections_per_destination",
            "must be at least 1",
        );
    }
}
