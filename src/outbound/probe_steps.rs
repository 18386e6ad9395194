//! `probe`'s observer of the ladder: each step it takes, as report lines
//! (connection, STARTTLS, the handshake, the certificate and its checks,
//! which TLS levels would accept it, DANE's record checks).

use std::fmt::Write;

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::client::Capabilities;
use super::ladder::{Handshake, Observer};
use super::policy::{self, AfterFailure, AfterHandshake, Checks, Failure, Rung};
use super::probe_dane;
use crate::config::values::TlsLevel;
use crate::tls::client::Presented;
use crate::tls::dane::Tlsa;

/// Probe's observer: each step the ladder takes, as report lines.
pub(super) struct Steps<'a> {
    pub(super) out: &'a mut String,
    pub(super) fallback: bool,
    /// Connections opened so far (one per rung).
    pub(super) connections: usize,
    /// A rung has failed already.
    pub(super) failed: bool,
    /// The reference names for DANE-TA: the MX host, the domain.
    pub(super) names: [String; 2],
}

impl Observer for Steps<'_> {
    fn connect_failed(&mut self, reason: &str) {
        let _ = writeln!(self.out, "  Connection         failed: {reason}");
    }

    fn greeted(&mut self, rung: Rung, capabilities: &Capabilities) {
        self.connections += 1;
        if self.connections > 1 {
            let _ = writeln!(
                self.out,
                "  Rung               {}, on a new connection",
                rung.name()
            );
            return;
        }
        let offered = capabilities.starttls;
        let said = if offered { "yes" } else { "no" };
        let _ = writeln!(self.out, "  STARTTLS offered   {said}");
        if !offered {
            let _ = writeln!(
                self.out,
                "  Levels accepting   none; opportunistic delivers in plaintext"
            );
        }
    }

    fn upgraded(&mut self, _rung: Rung, handshake: &Handshake) {
        let (negotiated, checks) = (&handshake.negotiated, &handshake.checks);
        let group = negotiated.group.as_deref().unwrap_or("unknown");
        let out = &mut *self.out;
        let _ = writeln!(
            out,
            "  TLS                {} {} key exchange {group}",
            negotiated.version, negotiated.cipher
        );
        for (i, cert) in handshake.chain.iter().enumerate() {
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
        let accepting: Vec<String> = levels_accepting(checks)
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(out, "  Levels accepting   {}", accepting.join(", "));
    }

    fn dane_checked(&mut self, records: &[Tlsa], presented: &Presented) {
        probe_dane::checked(self.out, &self.names, records, presented);
    }

    fn rung_failed(&mut self, _rung: Rung, failure: &Failure, _next: &AfterFailure) {
        let _ = writeln!(self.out, "  TLS                failed: {failure}");
        if std::mem::replace(&mut self.failed, true) {
            return;
        }
        // What the other levels would do; the forced ones try one rung.
        let lower = match self.fallback {
            true => "TLS 1.2 only, then plaintext",
            false => "TLS 1.2 only (opportunistic_fallback is off)",
        };
        let _ = writeln!(
            self.out,
            "  Levels accepting   none; opportunistic tries {lower}"
        );
    }
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
            AfterHandshake::Deliver(_)
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
