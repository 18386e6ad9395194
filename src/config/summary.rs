//! The effective configuration as `check-config` prints it: what listens,
//! which domains are accepted, and how each connector matches and routes.

use std::fmt::Write;

use super::model::{Config, InboundConnector, OutboundConnector};
use super::values::{DomainPattern, RequireTlsPolicy, TlsLevel};

impl Config {
    /// A readable table of the effective settings, defaults included.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let server = &self.server;
        let _ = writeln!(out, "{}: configuration is valid\n", self.file().display());
        let _ = writeln!(out, "Hostname    {}", server.hostname);
        let _ = writeln!(out, "Listeners");
        let mut listeners: Vec<Vec<String>> = Vec::new();
        let starttls = match self.tls.cert {
            Some(_) => "SMTP, STARTTLS offered",
            None => "SMTP, no STARTTLS (no tls.cert)",
        };
        for addr in &server.listen {
            listeners.push(vec![addr.0.to_string(), starttls.into()]);
        }
        for addr in &server.listen_implicit_tls {
            listeners.push(vec![addr.0.to_string(), "implicit TLS (RFC 8314)".into()]);
        }
        out.push_str(&table(&listeners));
        let _ = writeln!(out, "TLS         {}", self.tls_line());
        let _ = writeln!(
            out,
            "Limits      message {}, {} recipients, {} connections ({} per IP), {} hops, bare LF: {}",
            server.max_message_size,
            server.max_recipients,
            server.max_connections,
            server.max_connections_per_ip,
            server.max_hops,
            server.bare_lf
        );
        let _ = writeln!(
            out,
            "Timeouts    command {}, data silence {}, minimum data rate {}/s, TLS handshake {}, {} errors allowed, shutdown grace {}",
            server.command_timeout,
            server.data_timeout,
            server.min_data_rate,
            server.tls_handshake_timeout,
            server.max_errors,
            server.shutdown_grace
        );
        let _ = writeln!(out, "Spool       {}", server.spool_dir.display());
        self.write_connectors(&mut out);
        self.write_delivery(&mut out);
        out
    }

    /// Accepted domains, then the inbound and outbound connectors.
    fn write_connectors(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nAccepted domains (mail for them is taken from anyone)"
        );
        if self.relay.accepted_domains.is_empty() {
            let _ = writeln!(
                out,
                "  (none: this relay only carries mail from its inbound connectors)"
            );
        }
        for domain in &self.relay.accepted_domains {
            let _ = writeln!(out, "  {domain}");
        }

        let _ = writeln!(
            out,
            "\nInbound connectors (matched by verified client certificate, then by IP)"
        );
        let mut rows = vec![row(&[
            "NAME",
            "MATCHES",
            "RELAY",
            "REQUIRE TLS",
            "SENDER DOMAINS",
        ])];
        rows.extend(self.inbound.iter().map(inbound_row));
        rows.push(row(&[
            "(anonymous)",
            "any other client",
            "accepted domains only",
            "no",
            "-",
        ]));
        out.push_str(&table(&rows));

        let _ = writeln!(
            out,
            "\nOutbound connectors (most specific recipient domain wins)"
        );
        let mut rows = vec![row(&["NAME", "DOMAINS", "ROUTE", "TLS", "DETAILS"])];
        rows.extend(self.outbound.iter().map(outbound_row));
        if !self
            .outbound
            .iter()
            .any(|c| c.recipient_domains.contains(&DomainPattern::Any))
        {
            rows.push(row(&["(default)", "*", "MX lookup", "opportunistic", ""]));
        }
        out.push_str(&table(&rows));
    }

    /// Queue, delivery, DNS and metrics settings.
    fn write_delivery(&self, out: &mut String) {
        let queue = &self.queue;
        let retries: Vec<String> = queue
            .retry_intervals
            .iter()
            .map(ToString::to_string)
            .collect();
        let warning = queue
            .delay_warning()
            .map_or("no delay notices".to_string(), |d| {
                format!("delay notice after {d}")
            });
        let flow = match queue.backlog_limit {
            0 => "no backlog limit".to_string(),
            limit => format!(
                "MAIL refused at {limit} messages due, 250 delayed up to {} past half",
                queue.in_flow_delay
            ),
        };
        let _ = writeln!(
            out,
            "\nQueue       retry after {} (the last repeats), bounce after {}, {warning}, {flow}",
            retries.join(" "),
            queue.max_age
        );
        let delivery = &self.delivery;
        let _ = writeln!(
            out,
            "Delivery    connect timeout {}, MX port {}, {} connections per destination, plaintext fallback {}, broken-TLS memory {}, phase timeouts x{}, DANE {}, BDAT {}",
            delivery.connect_timeout,
            delivery.mx_port,
            delivery.max_connections_per_destination,
            yes_no(delivery.opportunistic_fallback),
            delivery.broken_tls_memory,
            delivery.phase_timeout_scale,
            match (delivery.dane, self.dns.dnssec) {
                (true, true) => "on (MX delivery under opportunistic and required)",
                (true, false) => "off ([dns] dnssec = false)",
                (false, _) => "off",
            },
            match delivery.chunking {
                true => "where offered",
                false => "never",
            }
        );
        let nameservers: Vec<String> = self
            .dns
            .nameservers
            .iter()
            .map(|n| n.0.to_string())
            .collect();
        let _ = writeln!(
            out,
            "DNS         {}, timeout {}, reverse lookups {}",
            if nameservers.is_empty() {
                "from /etc/resolv.conf".to_string()
            } else {
                nameservers.join(", ")
            },
            self.dns
                .timeout
                .map_or("default".to_string(), |t| t.to_string()),
            if self.dns.reverse_lookups {
                "on"
            } else {
                "off"
            }
        );
        let _ = writeln!(
            out,
            "DNSSEC      {}",
            match (self.dns.dnssec, &self.dns.trust_anchor) {
                (false, _) => "off (DANE never applies)".to_string(),
                (true, None) =>
                    "validated in process, trust anchor: the IANA root keys".to_string(),
                (true, Some(path)) =>
                    format!("validated in process, trust anchor {}", path.display()),
            }
        );
        let _ = writeln!(
            out,
            "Metrics     {}",
            self.admin
                .metrics_listen
                .map_or("off".to_string(), |a| format!("http://{}/metrics", a.0))
        );
    }

    fn tls_line(&self) -> String {
        let tls = &self.tls;
        let mut parts = Vec::new();
        match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => {
                parts.push(format!(
                    "certificate {}, key {}",
                    cert.display(),
                    key.display()
                ));
                if tls.generate_if_missing {
                    parts.push("self-signed if missing".into());
                }
            }
            _ => parts.push("no certificate: STARTTLS not offered".into()),
        }
        parts.push(format!("minimum {}", tls.min_version));
        let cas: Vec<String> = tls
            .client_ca
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        parts.push(match cas.is_empty() {
            true => "no client CAs".into(),
            false => format!("client CAs {}", cas.join(", ")),
        });
        parts.join("; ")
    }
}

fn inbound_row(connector: &InboundConnector) -> Vec<String> {
    let mut matches: Vec<String> = connector
        .tls_client_cert_names
        .iter()
        .map(|n| format!("cert {n}"))
        .collect();
    matches.extend(connector.remote_ips.iter().map(ToString::to_string));
    let senders = match connector.sender_domains.is_empty() {
        true => "-".to_string(),
        false => format!(
            "{}{}",
            join(&connector.sender_domains),
            if connector.restrict_sender_domains {
                " (only here)"
            } else {
                ""
            }
        ),
    };
    vec![
        connector.name.clone(),
        matches.join(", "),
        if connector.allow_relay {
            "any domain"
        } else {
            "accepted domains only"
        }
        .into(),
        yes_no(connector.require_tls).into(),
        senders,
    ]
}

fn outbound_row(connector: &OutboundConnector) -> Vec<String> {
    let route = match connector.smarthosts.is_empty() {
        true => "MX lookup".to_string(),
        false => join(&connector.smarthosts),
    };
    let mut details = Vec::new();
    match connector.tls {
        TlsLevel::VerifyDomain if connector.tls_domains.is_empty() => {
            details.push("names: the recipient domain and its subdomains".to_string())
        }
        TlsLevel::VerifyDomain => details.push(format!("names: {}", join(&connector.tls_domains))),
        TlsLevel::Pinned => details.push(format!("pins: {}", join(&connector.fingerprints))),
        _ => {}
    }
    if let Some(ca) = &connector.ca_file {
        details.push(format!("CA {}", ca.display()));
    }
    if connector.client_cert {
        details.push("client certificate".into());
    }
    if connector.tls != TlsLevel::None {
        details.push(format!("minimum {}", connector.min_tls_version));
    }
    if connector.requiretls == RequireTlsPolicy::Off {
        details.push("REQUIRETLS ignored".into());
    }
    vec![
        connector.name.clone(),
        join(&connector.recipient_domains),
        route,
        connector.tls.to_string(),
        details.join("; "),
    ]
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Left-aligned columns, two spaces apart, indented by two.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for cells in rows {
        let mut line = String::from("  ");
        for (i, cell) in cells.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < cells.len() {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
