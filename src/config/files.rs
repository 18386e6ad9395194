//! The files a configuration names: certificates, keys, CA files, the
//! trust anchor. `crate::preflight` reads them (for `check-config` and at
//! start), not [`Config::load`], so example configurations load on any
//! machine.

use std::path::Path;

use super::error::ConfigError;
use super::model::Config;

impl Config {
    /// The warnings of the configuration alone, with no file read.
    pub fn warnings(&self) -> Vec<ConfigError> {
        super::validate::warnings(self)
    }

    /// The files `crate::preflight::check_files` reads, by key, for
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
    pub fn ca_files(&self) -> impl Iterator<Item = (String, &Path)> {
        let client_cas = (self.tls.client_ca.iter().enumerate())
            .map(|(i, path)| (format!("tls.client_ca[{i}]"), path.as_path()));
        let ca_files = (self.outbound.iter().enumerate())
            .filter_map(|(i, c)| Some((format!("outbound[{i}].ca_file"), c.ca_file.as_deref()?)));
        let mta_sts = (self.mta_sts.ca_file.as_deref()).map(|p| ("mta_sts.ca_file".to_string(), p));
        client_cas.chain(ca_files).chain(mta_sts)
    }
}
