//! Configuration: one TOML file → a validated [`Config`] (DESIGN.md §3).
//!
//! Loading has three steps, each reporting `FILE:LINE:COL: key.path: …`:
//!
//! 1. serde with `deny_unknown_fields` into the types of [`model`]; every
//!    value type ([`values`]) parses and explains itself; every key serde
//!    refuses is reported, not only the first ([`deserialize`]);
//! 2. cross-field checks ([`validate`]) that need the whole file, such as
//!    mail loops and connectors claiming the same domain;
//! 3. `crate::preflight::check_files`, run by `check-config` and `serve` but not by
//!    [`Config::load`], reads the certificates, keys and CA files the file
//!    names, so example configurations load on any machine.
//!
//! Relative paths resolve against the configuration file's folder.

mod coverage;
mod defaults;
mod deserialize;
pub mod domain;
mod error;
mod files;
mod model;
mod summary;
mod validate;
pub mod values;

use std::path::{Path, PathBuf};

pub use coverage::{connector_covering, most_specific};
pub use error::{ConfigError, ConfigErrors, Located, Target};
pub use model::*;

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            position: None,
            key: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        })?;
        Config::parse(path, text)
    }

    /// Parses and validates configuration text as if read from `path`.
    pub fn parse(path: &Path, text: String) -> Result<Config, ConfigErrors> {
        let located = Located::new(path, text);
        let (config, mut errors) = match deserialize::deserialize(&located) {
            Ok(config) => (config, Vec::new()),
            Err(deserialize::Refused {
                errors,
                repaired: Some(config),
            }) => (*config, errors),
            Err(deserialize::Refused {
                errors,
                repaired: None,
            }) => return Err(ConfigErrors(errors)),
        };
        let mut config = config;
        config.resolve_paths(&base_dir(path));
        config.located = located;
        // The cross-field checks run on what serde accepted, so one run
        // reports every problem it can find, but only those that read no
        // section where serde refused a key.
        let refused: Vec<&str> = errors.iter().map(|e| section_of(&e.key)).collect();
        if let Err(checked) = validate::check(&config, &refused) {
            errors.extend(checked.0);
        }
        if errors.is_empty() {
            return Ok(config);
        }
        errors.sort_by_key(|e| e.position);
        errors.dedup();
        Err(ConfigErrors(errors))
    }

    /// The file this configuration came from.
    pub fn file(&self) -> &Path {
        &self.located.file
    }

    /// An error placed at `key` in this configuration's file.
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        self.located.error(key, Target::Value, message)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = join_clean(base, path);
            }
        };
        resolve(&mut self.server.spool_dir);
        self.tls.cert.iter_mut().for_each(resolve);
        self.tls.key.iter_mut().for_each(resolve);
        self.tls.client_ca.iter_mut().for_each(resolve);
        self.dns.trust_anchor.iter_mut().for_each(resolve);
        self.mta_sts.ca_file.iter_mut().for_each(resolve);
        for connector in &mut self.outbound {
            connector.ca_file.iter_mut().for_each(resolve);
        }
    }
}

/// The top-level section of a key path: `outbound` for `outbound[1].tls`.
fn section_of(key: &str) -> &str {
    key.split(['.', '[']).next().unwrap_or(key)
}

/// The folder relative paths resolve against: the configuration file's,
/// made absolute so that logs and errors show usable paths.
fn base_dir(file: &Path) -> PathBuf {
    let parent = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf())
}

/// `base/../x` → `x`, lexically: the base is canonical, so no symlink sits
/// between it and the `..`.
fn join_clean(base: &Path, relative: &Path) -> PathBuf {
    let mut joined = base.to_path_buf();
    for part in relative.components() {
        match part {
            std::path::Component::ParentDir if joined.parent().is_some() => {
                joined.pop();
            }
            std::path::Component::CurDir => {}
            other => joined.push(other),
        }
    }
    joined
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
