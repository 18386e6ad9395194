//! TLS errors in words for log lines and delivery status notifications:
//! short, without rustls's documentation URL (its "closed without
//! close_notify" error carries one) and without `Debug` dumps of its enums
//! (`PeerIncompatible(NoCipherSuitesInCommon)`). Every place that turns an
//! I/O error of a TLS stream into text goes through [`io_reason`].

use std::io;

use rustls::{CertificateError, Error};

/// An I/O error, which may carry a rustls error, in words.
pub fn io_reason(error: &io::Error) -> String {
    if let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
        return tls_reason(tls);
    }
    if error.kind() == io::ErrorKind::UnexpectedEof && error.to_string().contains("close_notify") {
        // What rustls reports when TCP ends without a TLS close_notify.
        return "connection closed without a TLS close_notify".into();
    }
    without_urls(&error.to_string())
}

/// A rustls error in words.
pub fn tls_reason(error: &Error) -> String {
    match error {
        Error::AlertReceived(alert) => format!("TLS alert from the peer: {}", words(alert)),
        Error::PeerIncompatible(why) => format!("TLS peer incompatible: {}", words(why)),
        Error::PeerMisbehaved(why) => format!("TLS peer misbehaved: {}", words(why)),
        Error::InvalidCertificate(why) => certificate_reason(why),
        Error::InvalidMessage(why) => format!("corrupt TLS message: {}", words(why)),
        Error::InappropriateMessage { .. } | Error::InappropriateHandshakeMessage { .. } => {
            "unexpected TLS message".into()
        }
        Error::NoCertificatesPresented => "the peer sent no certificate".into(),
        Error::DecryptError => "TLS record could not be decrypted".into(),
        Error::PeerSentOversizedRecord => "TLS record too large".into(),
        other => without_urls(&other.to_string()),
    }
}

fn certificate_reason(error: &CertificateError) -> String {
    let what = match error {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".into(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "not valid yet".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "not valid for the server name".into()
        }
        CertificateError::UnknownIssuer => "issuer unknown".into(),
        CertificateError::Other(other) => without_urls(&other.to_string()),
        other => words(other),
    };
    format!("invalid certificate: {what}")
}

/// A rustls enum value's `Debug` name as lowercase words:
/// `NoCipherSuitesInCommon` → `no cipher suites in common`; data in
/// brackets after the name is dropped.
fn words(value: &impl std::fmt::Debug) -> String {
    let name = format!("{value:?}");
    let name = name.split(['(', ' ', '{']).next().unwrap_or_default();
    let mut out = String::with_capacity(name.len() + 8);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// `text` without URLs (and the `: ` that introduced one).
fn without_urls(text: &str) -> String {
    text.split(' ')
        .filter(|word| !word.contains("://"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches([' ', ':'])
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{AlertDescription, PeerIncompatible};

    #[test]
    fn rustls_errors_read_as_words_without_urls_or_debug_dumps() {
        let eof = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify: \
             https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof",
        );
        assert_eq!(
            io_reason(&eof),
            "connection closed without a TLS close_notify"
        );
        let alert = io::Error::new(
            io::ErrorKind::InvalidData,
            Error::AlertReceived(AlertDescription::ProtocolVersion),
        );
        assert_eq!(
            io_reason(&alert),
            "TLS alert from the peer: protocol version"
        );
        let incompatible = Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon);
        assert_eq!(
            tls_reason(&incompatible),
            "TLS peer incompatible: no cipher suites in common"
        );
        assert_eq!(
            tls_reason(&Error::InvalidCertificate(CertificateError::UnknownIssuer)),
            "invalid certificate: issuer unknown"
        );
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(io_reason(&reset), "connection reset");
        assert_eq!(
            without_urls("went wrong: see https://example.test/x"),
            "went wrong: see"
        );
    }
}
