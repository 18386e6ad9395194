//! Configuration: one TOML file → a validated [`Config`] (DESIGN.md §3).
//!
//! Loading has three steps, each reporting `FILE:LINE:COL: key.path: …`:
//!
//! 1. serde with `deny_unknown_fields` into the types of [`model`]; every
//!    value type ([`values`]) parses and explains itself;
//! 2. cross-field checks ([`validate`]) that need the whole file, such as
//!    mail loops and connectors claiming the same domain;
//! 3. [`Config::check_files`], run by `check-config` and `serve` but not by
//!    [`Config::load`], reads the certificates, keys and CA files the file
//!    names, so example configurations load on any machine.
//!
//! Relative paths resolve against the configuration file's folder.

pub mod domain;
mod error;
mod files;
mod model;
mod summary;
mod validate;
pub mod values;

use std::path::{Path, PathBuf};

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
        let mut config = deserialize(&located)?;
        config.resolve_paths(&base_dir(path));
        config.located = located;
        validate::check(&config)?;
        Ok(config)
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
        for connector in &mut self.outbound {
            connector.ca_file.iter_mut().for_each(resolve);
        }
    }
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

fn deserialize(located: &Located) -> Result<Config, ConfigError> {
    let deserializer = toml::Deserializer::parse(&located.text).map_err(|e| {
        located.error_at_span("", e.span(), format!("TOML syntax: {}", e.message()))
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = match e.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        let serde_message = e.inner().message();
        // "missing field" comes with the path of the table that lacks it:
        // point at that table, name the missing key.
        if let Some(field) = serde_message.strip_prefix("missing field ") {
            let field = field.trim_matches('`');
            let key = match path.as_str() {
                "" => field.to_string(),
                table => format!("{table}.{field}"),
            };
            let span = match path.as_str() {
                "" => Some(0..0),
                table => located.span_of(table, Target::Value),
            };
            return located.error_at_span(&key, span, "missing: this key is required");
        }
        let (message, target) = explain_serde(serde_message);
        let span = located.span_of(&path, target).or(e.inner().span());
        located.error_at_span(&path, span, message)
    })
}

/// Rewords serde's messages in the administrator's terms, and says whether
/// they concern the key itself or its value.
fn explain_serde(message: &str) -> (String, Target) {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (field, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let message = match expected {
            "" => format!("unknown key {field}"),
            _ => format!(
                "unknown key {field}; known keys here: {}",
                expected.trim_start_matches("one of ")
            ),
        };
        return (message, Target::Key);
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (value, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let expected = expected.trim_start_matches("one of ");
        return (
            format!("invalid value {value}; use {expected}"),
            Target::Value,
        );
    }
    let plain = message
        .replace("expected usize", "expected a whole number")
        .replace("expected u16", "expected a port number from 1 to 65535")
        .replace("expected a boolean", "expected true or false");
    (plain, Target::Value)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
