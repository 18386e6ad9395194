//! Configuration errors as administrators read them:
//! `FILE:LINE:COL: key.path: what is wrong (and what would be right)`.
//!
//! Every check speaks in key paths (`outbound[1].tls`), the same form
//! `serde_path_to_error` gives for type errors; [`Located`] turns a key path
//! into a line and column by walking the spanned TOML document.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column (in characters); `None` for whole-file problems.
    pub position: Option<(usize, usize)>,
    /// The key path, such as `outbound[1].fingerprints`; empty for syntax errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        match self.key.as_str() {
            "" => write!(f, ": {}", self.message),
            key => write!(f, ": {key}: {}", self.message),
        }
    }
}

/// All problems found in one file, in file order. Displayed one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

/// Where a key path points: at the key itself (for "unknown key") or at
/// its value (for "wrong value").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Key,
    Value,
}

/// A configuration file's text, able to place key paths in it.
#[derive(Clone, Debug, Default)]
pub struct Located {
    pub file: PathBuf,
    pub text: String,
}

impl Located {
    pub fn new(file: &Path, text: String) -> Self {
        Located {
            file: file.to_path_buf(),
            text,
        }
    }

    /// An error at `key`, placed at the key or value it names, or at the
    /// nearest enclosing table when the key is absent from the file.
    pub fn error(&self, key: &str, target: Target, message: impl Into<String>) -> ConfigError {
        self.error_at_span(key, self.span_of(key, target), message)
    }

    /// The byte range `key` names in the file, or that of its nearest
    /// enclosing table present in the file.
    pub fn span_of(&self, key: &str, target: Target) -> Option<Range<usize>> {
        let doc = DeTable::parse(&self.text).ok()?;
        find(&doc, &parse_path(key), target)
    }

    /// An error at a span the TOML parser reported.
    pub fn error_at_span(
        &self,
        key: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            position: Some(span.map_or((1, 1), |span| self.line_col(span.start))),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `outbound[1].tls_domains[0]` into keys and indices.
fn parse_path(path: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            segments.push(Segment::Key(key));
        }
        while let Some(index) = rest
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .and_then(|(n, after)| Some((n.parse().ok()?, after)))
        {
            segments.push(Segment::Index(index.0));
            rest = index.1;
        }
    }
    segments
}

/// Walks the spanned document; returns the span of the deepest part of
/// the path that exists (so a missing key points at its table).
fn find(doc: &Spanned<DeTable<'_>>, path: &[Segment<'_>], target: Target) -> Option<Range<usize>> {
    let mut best = None;
    let mut table = Some(doc.get_ref());
    let mut array: Option<&toml::de::DeArray<'_>> = None;
    for (i, segment) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        let value = match segment {
            Segment::Key(name) => {
                let Some((key, value)) =
                    table.and_then(|t| t.iter().find(|(k, _)| k.get_ref() == name))
                else {
                    return best;
                };
                if last && target == Target::Key {
                    return Some(key.span());
                }
                value
            }
            Segment::Index(index) => match array.and_then(|a| a.get(*index)) {
                Some(value) => value,
                None => return best,
            },
        };
        best = Some(value.span());
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a),
            _ => {}
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, key: &str, target: Target) -> Option<(usize, usize)> {
        Located::new(Path::new("t.toml"), text.to_string())
            .error(key, target, "x")
            .position
    }

    #[test]
    fn places_keys_values_and_array_elements() {
        let text = "[server]\nhostname = \"h\"\nlisten = [\"a\", \"b\"]\n\n[[outbound]]\nname = \"x\"\n\n[[outbound]]\nname = \"é\"\ntls = \"pinned\"\n";
        assert_eq!(at(text, "server.hostname", Target::Key), Some((2, 1)));
        assert_eq!(at(text, "server.hostname", Target::Value), Some((2, 12)));
        assert_eq!(at(text, "server.listen[1]", Target::Value), Some((3, 16)));
        assert_eq!(at(text, "outbound[1].tls", Target::Value), Some((10, 7)));
        // A key that is absent points at the table that should hold it.
        assert_eq!(
            at(text, "outbound[1].fingerprints", Target::Value),
            Some((8, 1))
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let text = "[server]\nhostname = \"é\" ; x = 1\n";
        let located = Located::new(Path::new("t.toml"), text.to_string());
        let offset = text.find(';').unwrap_or_default();
        assert_eq!(located.line_col(offset), (2, 16));
    }
}
