//! TOML → [`Config`] with every refused key reported in one run.
//!
//! serde stops at the first key it cannot take. To report them all, each
//! refused key is reported, then taken out of a copy of the document (a
//! wrong value inside a list takes the whole list: removing one element
//! would renumber the others), or, when the key is required, given a
//! placeholder; the copy is deserialized again, a bounded number of times.
//! The configuration that finally deserializes is only used to run the
//! cross-field checks; it is never served.

use serde_path_to_error::Segment;

use super::error::{ConfigError, Located, Target};
use super::model::Config;

/// How many refused keys one run reports at most.
const MAX_REFUSED: usize = 64;

/// What serde refused, and the configuration it took once the refused
/// keys were out of the way (`None` when it could not get that far, as
/// after a TOML syntax error).
pub(super) struct Refused {
    pub errors: Vec<ConfigError>,
    pub repaired: Option<Box<Config>>,
}

pub(super) fn deserialize(located: &Located) -> Result<Config, Refused> {
    let syntax = |span, message: &str| Refused {
        errors: vec![located.error_at_span("", span, format!("TOML syntax: {message}"))],
        repaired: None,
    };
    let deserializer =
        toml::Deserializer::parse(&located.text).map_err(|e| syntax(e.span(), e.message()))?;
    // The first pass reads the text itself, so serde's own spans are at hand.
    let first = match serde_path_to_error::deserialize(deserializer) {
        Ok(config) => return Ok(config),
        Err(e) => e,
    };
    let mut document: toml::Value =
        toml::from_str(&located.text).map_err(|e| syntax(e.span(), e.message()))?;
    let mut errors = Vec::new();
    let mut error = first;
    loop {
        let path: Vec<Segment> = error.path().iter().cloned().collect();
        let refusal = explain(located, &error);
        let missing = refusal.missing.clone();
        // A required list taken out for a wrong element is reported once,
        // for that element; it only needs its placeholder.
        let key = &refusal.error.key;
        let seen = errors
            .iter()
            .any(|e: &ConfigError| e.key == *key || e.key.starts_with(&format!("{key}[")));
        if !seen {
            errors.push(refusal.error);
        } else if missing.is_none() {
            // The same key twice: the repair did not take.
            break;
        }
        if errors.len() >= MAX_REFUSED || !repair(&mut document, &path, missing.as_deref()) {
            break;
        }
        match serde_path_to_error::deserialize(document.clone()) {
            Ok(config) => {
                drop_misspelt_missing(&mut errors);
                return Err(Refused {
                    errors,
                    repaired: Some(Box::new(config)),
                });
            }
            Err(next) => error = next,
        }
    }
    drop_misspelt_missing(&mut errors);
    Err(Refused {
        errors,
        repaired: None,
    })
}

/// A required key reported missing beside an unknown key spelt almost
/// like it is one mistake, a misspelling: only the unknown key is reported.
fn drop_misspelt_missing(errors: &mut Vec<ConfigError>) {
    let unknown: Vec<String> = errors
        .iter()
        .filter(|e| e.message.starts_with("unknown key "))
        .map(|e| e.key.clone())
        .collect();
    errors.retain(|e| {
        e.message != MISSING
            || !unknown.iter().any(|u| {
                table_of(u) == table_of(&e.key) && edit_distance(leaf(u), leaf(&e.key)) <= 2
            })
    });
}

/// The table a key path is in: `outbound[1]` for `outbound[1].tls`.
fn table_of(key: &str) -> &str {
    key.rsplit_once('.').map_or("", |(table, _)| table)
}

fn leaf(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// Levenshtein distance, for short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

const MISSING: &str = "missing: this key is required";

struct Refusal {
    error: ConfigError,
    /// The required key that is missing, for "missing field" errors.
    missing: Option<String>,
}

/// serde's error placed in the file and worded for an administrator.
fn explain(located: &Located, e: &serde_path_to_error::Error<toml::de::Error>) -> Refusal {
    let path = match e.path().to_string() {
        root if root == "." => String::new(),
        path => path,
    };
    let serde_message = e.inner().message();
    // "missing field" comes with the path of the table that lacks it:
    // point at that table, name the missing key.
    if let Some(field) = serde_message.strip_prefix("missing field ") {
        let field = field.trim_matches('`').to_string();
        let key = match path.as_str() {
            "" => field.clone(),
            table => format!("{table}.{field}"),
        };
        let span = match path.as_str() {
            "" => Some(0..0),
            table => located.span_of(table, Target::Value),
        };
        return Refusal {
            error: located.error_at_span(&key, span, MISSING),
            missing: Some(field),
        };
    }
    let (message, target) = explain_serde(serde_message);
    let span = located.span_of(&path, target).or(e.inner().span());
    Refusal {
        error: located.error_at_span(&path, span, message),
        missing: None,
    }
}

/// Takes the refused key at `path` out of `document`, or gives the
/// missing required key `missing` a placeholder. False when nothing could
/// be changed.
fn repair(document: &mut toml::Value, path: &[Segment], missing: Option<&str>) -> bool {
    if let Some(field) = missing {
        let Some(toml::Value::Table(table)) = walk(document, path) else {
            return false;
        };
        let placeholder = match field {
            "name" => toml::Value::String(format!("unnamed-{}", path.len())),
            "recipient_domains" => toml::Value::Array(vec!["placeholder.invalid".into()]),
            "server" => toml::Value::Table(toml::Table::new()),
            _ => toml::Value::String("placeholder.invalid".into()),
        };
        return table.insert(field.to_string(), placeholder).is_none();
    }
    // A wrong element of a list of values takes the whole list.
    let cut = path
        .iter()
        .rposition(|s| matches!(s, Segment::Map { .. }))
        .filter(|&i| {
            i + 1 == path.len()
                || matches!(walk(document, &path[..=i]), Some(toml::Value::Array(items))
                    if !items.iter().all(toml::Value::is_table))
        });
    let Some(cut) = cut else {
        return false;
    };
    let Segment::Map { key } = &path[cut] else {
        return false;
    };
    match walk(document, &path[..cut]) {
        Some(toml::Value::Table(table)) => table.remove(key).is_some(),
        _ => false,
    }
}

fn walk<'a>(mut value: &'a mut toml::Value, path: &[Segment]) -> Option<&'a mut toml::Value> {
    for segment in path {
        value = match (segment, value) {
            (Segment::Map { key }, toml::Value::Table(table)) => table.get_mut(key)?,
            (Segment::Seq { index }, toml::Value::Array(items)) => items.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(value)
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
