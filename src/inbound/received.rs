//! Our `Received:` header (RFC 5321 §4.4): who the client is, how it
//! reached us (connector, TLS version, cipher, key exchange, client
//! certificate), and when.

use std::fmt::Write;
use std::net::IpAddr;

use super::session::Session;
use crate::tls::server::ClientCert;

impl Session {
    /// The header line block, CRLF-terminated, for message `queue_id`.
    pub(super) fn received_header(&self, queue_id: &str, date: &str) -> String {
        let helo = printable(self.helo.as_deref().unwrap_or("unknown"));
        let reverse = self
            .reverse_name
            .as_deref()
            .map_or("unknown".to_string(), printable);
        let literal = match self.ip {
            IpAddr::V4(ip) => format!("[{ip}]"),
            IpAddr::V6(ip) => format!("[IPv6:{ip}]"),
        };
        let mut header = format!("Received: from {helo} ({reverse} {literal})\r\n");
        if let Some(tls) = &self.tls {
            let group = tls
                .group
                .as_deref()
                .map_or(String::new(), |g| format!(" key-exchange {g}"));
            let _ = write!(
                header,
                "\t(using {} with cipher {}{group})\r\n",
                tls.version, tls.cipher
            );
            let cert = match &tls.client_cert {
                ClientCert::None => "(no client certificate)".to_string(),
                ClientCert::Verified { subject, .. } => {
                    format!("(client certificate verified: {})", printable(subject))
                }
                ClientCert::Unverified { subject, reason } => {
                    format!(
                        "(client certificate not verified: {}: {})",
                        printable(subject),
                        printable(reason)
                    )
                }
            };
            let _ = write!(header, "\t{cert}\r\n");
        }
        let connector = self.connector_name().map_or(String::new(), |name| {
            format!("; connector {}", printable(name))
        });
        let _ = write!(
            header,
            "\tby {} (tlsrelay{connector}) with {} id {queue_id}",
            self.policy.hostname,
            self.protocol()
        );
        let recipients = self
            .envelope
            .as_ref()
            .map_or(&[][..], |e| &e.recipients[..]);
        if let [only] = recipients {
            let _ = write!(header, "\r\n\tfor <{}>", printable(&only.address));
        }
        let _ = write!(header, "; {date}\r\n");
        header
    }

    /// The `with` keyword of RFC 3848 / RFC 6531: ESMTP, plus S for TLS;
    /// UTF8SMTP* for SMTPUTF8. Never the A of `ESMTPSA`: RFC 3848 keeps it
    /// for SMTP AUTH, and a client certificate is not that; the verified
    /// subject is in the TLS comment instead.
    fn protocol(&self) -> String {
        let base = match (
            self.esmtp,
            self.envelope.as_ref().is_some_and(|e| e.smtputf8),
        ) {
            (false, _) => return "SMTP".to_string(),
            (true, true) => "UTF8SMTP",
            (true, false) => "ESMTP",
        };
        match self.tls {
            Some(_) => format!("{base}S"),
            None => base.to_string(),
        }
    }
}

/// Client-supplied text made safe for a header: printable, no CR/LF.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(255)
        .collect()
}
