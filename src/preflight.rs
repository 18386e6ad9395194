//! Preflight: reads every file a configuration names (certificates, keys,
//! CA files, the DNSSEC trust anchor) and the spool folder, for
//! `check-config` and before `serve` starts or reloads. Kept out of
//! `crate::config`, which only parses and cross-checks the text, so the
//! configuration layer needs neither TLS nor DNS code.

use std::path::Path;

use crate::config::{Config, ConfigError, ConfigErrors};
use crate::tls::certs::{self, CertError};

/// Reads every certificate, key and CA file the configuration names.
/// Returns warnings (placed like errors, message starting `warning:`)
/// for things that do not stop the relay, such as an expiring
/// certificate, and the configuration's own (a wide relay network).
pub fn check_files(config: &Config) -> Result<Vec<ConfigError>, ConfigErrors> {
    let mut errors = Vec::new();
    let mut warnings = config.warnings();
    check_identity(config, &mut errors, &mut warnings);
    for (key, path) in config.ca_files() {
        if let Err(e) = certs::load_ca_file(path) {
            errors.push(config.error(&key, e.to_string()));
        }
    }
    if config.dns.dnssec {
        if let Some(error) = check_trust_anchor(config) {
            errors.push(error);
        }
    }
    let spool = &config.server.spool_dir;
    if spool.exists() && !spool.is_dir() {
        errors.push(config.error(
            "server.spool_dir",
            format!("{} exists and is not a folder", spool.display()),
        ));
    }
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// `[dns] trust_anchor`, placed in the anchor file itself when a
/// record there is wrong, else at the key.
fn check_trust_anchor(config: &Config) -> Option<ConfigError> {
    let path = config.dns.trust_anchor.as_deref()?;
    let error = crate::dns::anchor::load(Some(path)).err()?;
    Some(match error.position {
        Some(position) => ConfigError {
            file: error.path,
            position: Some(position),
            key: "dns.trust_anchor".into(),
            message: error.message,
        },
        None => config.error(
            "dns.trust_anchor",
            format!("{}: {}", error.path.display(), error.message),
        ),
    })
}

fn check_identity(config: &Config, errors: &mut Vec<ConfigError>, warnings: &mut Vec<ConfigError>) {
    let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) else {
        return;
    };
    let missing: Vec<(&str, &Path)> = [("tls.cert", cert.as_path()), ("tls.key", key.as_path())]
        .into_iter()
        .filter(|(_, path)| !path.exists())
        .collect();
    if config.tls.generate_if_missing && !missing.is_empty() {
        warnings.push(config.error("tls.cert", format!(
            "warning: {} does not exist yet; a self-signed certificate for {} will be generated at start",
            missing[0].1.display(),
            config.server.hostname
        )));
        return;
    }
    for (key_name, path) in &missing {
        errors.push(config.error(key_name, format!(
            "{} does not exist: put the file there, run `tlsrelay gen-cert`, or set tls.generate_if_missing = true",
            path.display()
        )));
    }
    if !missing.is_empty() {
        return;
    }
    match certs::load_identity(cert, key) {
        Ok(identity) => {
            warnings.extend(
                identity
                    .warnings
                    .iter()
                    .map(|w| config.error("tls.cert", format!("warning: {w}"))),
            );
            if !identity.client_auth {
                warnings.extend(client_cert_without_client_auth(config, cert));
            }
        }
        Err(e) => {
            let key_name = match &e {
                CertError::Read { path, .. } | CertError::Invalid { path, .. } if path == key => {
                    "tls.key"
                }
                _ => "tls.cert",
            };
            errors.push(config.error(key_name, e.to_string()));
        }
    }
}

/// Warnings for the outbound connectors that present `[tls] cert` as
/// a client certificate when its extended key usage lacks clientAuth:
/// Postfix and other OpenSSL receivers refuse such a certificate, and
/// public CAs stop putting clientAuth in server certificates in 2026.
fn client_cert_without_client_auth<'a>(
    config: &'a Config,
    cert: &'a Path,
) -> impl Iterator<Item = ConfigError> + 'a {
    config.outbound
        .iter()
        .enumerate()
        .filter(|(_, connector)| connector.client_cert)
        .map(move |(i, _)| {
            config.error(&format!("outbound[{i}].client_cert"), format!(
                "warning: {} has an extended key usage without clientAuth; receivers that check it (Postfix: \"not designated for use as a client certificate\") will not accept it as this connector's client certificate: use a certificate with clientAuth (for example from a private CA the partner trusts), or set client_cert = false",
                cert.display()
            ))
        })
}
