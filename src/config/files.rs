//! The files a configuration names: certificates, keys, CA files, the
//! spool folder. Checked by `check-config` and at start, not by
//! [`Config::load`], so example configurations load on any machine.

use std::path::Path;

use super::error::{ConfigError, ConfigErrors};
use super::model::Config;
use crate::tls::certs::{self, CertError};

impl Config {
    /// Reads every certificate, key and CA file the configuration names.
    /// Returns warnings (placed like errors, message starting `warning:`)
    /// for things that do not stop the relay, such as an expiring
    /// certificate, and the configuration's own (a wide relay network).
    pub fn check_files(&self) -> Result<Vec<ConfigError>, ConfigErrors> {
        let mut errors = Vec::new();
        let mut warnings = self.warnings();
        self.check_identity(&mut errors, &mut warnings);
        for (key, path) in self.ca_files() {
            if let Err(e) = certs::load_ca_file(path) {
                errors.push(self.error(&key, e.to_string()));
            }
        }
        if self.dns.dnssec {
            if let Some(error) = self.check_trust_anchor() {
                errors.push(error);
            }
        }
        let spool = &self.server.spool_dir;
        if spool.exists() && !spool.is_dir() {
            errors.push(self.error(
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

    /// The warnings of the configuration alone, with no file read.
    pub fn warnings(&self) -> Vec<ConfigError> {
        super::validate::warnings(self)
    }

    /// The files [`Config::check_files`] would read, by key, for
    /// `check-config --skip-files` to name what it left unchecked.
    pub fn named_files(&self) -> Vec<(String, &Path)> {
        let identity = [("tls.cert", &self.tls.cert), ("tls.key", &self.tls.key)]
            .into_iter()
            .filter_map(|(key, path)| Some((key.to_string(), path.as_deref()?)));
        let anchor = (self.dns.trust_anchor.as_deref().filter(|_| self.dns.dnssec))
            .map(|path| ("dns.trust_anchor".to_string(), path));
        identity.chain(self.ca_files()).chain(anchor).collect()
    }

    /// The CA files, by key: client CAs, then each connector's `ca_file`.
    fn ca_files(&self) -> impl Iterator<Item = (String, &Path)> {
        let client_cas = (self.tls.client_ca.iter().enumerate())
            .map(|(i, path)| (format!("tls.client_ca[{i}]"), path.as_path()));
        let ca_files = (self.outbound.iter().enumerate())
            .filter_map(|(i, c)| Some((format!("outbound[{i}].ca_file"), c.ca_file.as_deref()?)));
        client_cas.chain(ca_files)
    }

    /// `[dns] trust_anchor`, placed in the anchor file itself when a
    /// record there is wrong, else at the key.
    fn check_trust_anchor(&self) -> Option<ConfigError> {
        let path = self.dns.trust_anchor.as_deref()?;
        let error = crate::dns::anchor::load(Some(path)).err()?;
        Some(match error.position {
            Some(position) => ConfigError {
                file: error.path,
                position: Some(position),
                key: "dns.trust_anchor".into(),
                message: error.message,
            },
            None => self.error(
                "dns.trust_anchor",
                format!("{}: {}", error.path.display(), error.message),
            ),
        })
    }

    fn check_identity(&self, errors: &mut Vec<ConfigError>, warnings: &mut Vec<ConfigError>) {
        let (Some(cert), Some(key)) = (&self.tls.cert, &self.tls.key) else {
            return;
        };
        let missing: Vec<(&str, &Path)> =
            [("tls.cert", cert.as_path()), ("tls.key", key.as_path())]
                .into_iter()
                .filter(|(_, path)| !path.exists())
                .collect();
        if self.tls.generate_if_missing && !missing.is_empty() {
            warnings.push(self.error("tls.cert", format!(
                "warning: {} does not exist yet; a self-signed certificate for {} will be generated at start",
                missing[0].1.display(),
                self.server.hostname
            )));
            return;
        }
        for (key_name, path) in &missing {
            errors.push(self.error(key_name, format!(
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
                        .map(|w| self.error("tls.cert", format!("warning: {w}"))),
                );
                if !identity.client_auth {
                    warnings.extend(self.client_cert_without_client_auth(cert));
                }
            }
            Err(e) => {
                let key_name = match &e {
                    CertError::Read { path, .. } | CertError::Invalid { path, .. }
                        if path == key =>
                    {
                        "tls.key"
                    }
                    _ => "tls.cert",
                };
                errors.push(self.error(key_name, e.to_string()));
            }
        }
    }

    /// Warnings for the outbound connectors that present `[tls] cert` as
    /// a client certificate when its extended key usage lacks clientAuth:
    /// Postfix and other OpenSSL receivers refuse such a certificate, and
    /// public CAs stop putting clientAuth in server certificates in 2026.
    fn client_cert_without_client_auth<'a>(
        &'a self,
        cert: &'a Path,
    ) -> impl Iterator<Item = ConfigError> + 'a {
        self.outbound
            .iter()
            .enumerate()
            .filter(|(_, connector)| connector.client_cert)
            .map(move |(i, _)| {
                self.error(&format!("outbound[{i}].client_cert"), format!(
                    "warning: {} has an extended key usage without clientAuth; receivers that check it (Postfix: \"not designated for use as a client certificate\") will not accept it as this connector's client certificate: use a certificate with clientAuth (for example from a private CA the partner trusts), or set client_cert = false",
                    cert.display()
                ))
            })
    }
}
