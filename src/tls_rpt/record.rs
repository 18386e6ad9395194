//! The `_smtp._tls.DOMAIN` TXT record (RFC 8460 §3): where a domain wants
//! its TLS reports. `v=TLSRPTv1; rua=mailto:reports@example.com,https://…`.

use std::fmt;

/// One place a report goes (RFC 8460 §3, `rua`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rua {
    /// POST the gzipped report to this URL (`https:` only).
    Https(String),
    /// Mail the report to this address.
    Mailto(String),
}

impl fmt::Display for Rua {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rua::Https(url) => f.write_str(url),
            Rua::Mailto(address) => write!(f, "mailto:{address}"),
        }
    }
}

/// Why a domain's TLSRPT records name nowhere to report to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("no v=TLSRPTv1 record")]
    Missing,
    #[error("{0} v=TLSRPTv1 records (RFC 8460 §3 wants exactly one)")]
    Several(usize),
    #[error("the record has no usable rua URI: {0}")]
    NoRua(String),
}

/// The report URIs of a domain from its TXT strings (each record's
/// character-strings already joined). Records not starting `v=TLSRPTv1`
/// are ignored (RFC 8460 §3); exactly one must remain. URIs of other
/// schemes, and `http:`, are skipped.
pub fn parse(records: &[String]) -> Result<Vec<Rua>, RecordError> {
    let ours: Vec<&String> = records
        .iter()
        .filter(|r| {
            let first = r.split(';').next().unwrap_or("");
            first.trim().eq_ignore_ascii_case("v=TLSRPTv1")
        })
        .collect();
    let record = match ours.as_slice() {
        [] => return Err(RecordError::Missing),
        [one] => one,
        many => return Err(RecordError::Several(many.len())),
    };
    let mut found = Vec::new();
    for field in record.split(';').skip(1) {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("rua") {
            continue;
        }
        found.extend(value.split(',').filter_map(|uri| rua(uri.trim())));
    }
    match found.is_empty() {
        true => Err(RecordError::NoRua(record.to_string())),
        false => Ok(found),
    }
}

/// One URI of `rua`, if it is a scheme we send to.
pub fn rua(uri: &str) -> Option<Rua> {
    let (scheme, rest) = uri.split_once(':')?;
    match scheme.to_ascii_lowercase().as_str() {
        "https" if rest.starts_with("//") && rest.len() > 2 => Some(Rua::Https(uri.to_string())),
        "mailto" => {
            // RFC 6068: percent-encoded; a query part (`?subject=`) is not ours.
            let address = percent_decode(rest.split('?').next()?)?;
            let (local, domain) = address.rsplit_once('@')?;
            (!local.is_empty() && !domain.is_empty()).then_some(Rua::Mailto(address))
        }
        _ => None,
    }
}

/// `%XX` decoded; `None` for a bad escape or a result that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(records: &[&str]) -> Vec<String> {
        records.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn every_rua_uri_is_kept_in_order() {
        let found = parse(&strings(&[
            "v=TLSRPTv1; rua=mailto:tlsrpt@example.test,https://reports.example.test/tlsrpt",
        ]));
        assert_eq!(
            found,
            Ok(vec![
                Rua::Mailto("tlsrpt@example.test".into()),
                Rua::Https("https://reports.example.test/tlsrpt".into()),
            ])
        );
    }

    #[test]
    fn other_records_are_ignored_and_two_of_ours_are_an_error() {
        let found = parse(&strings(&["v=spf1 -all", "v=TLSRPTv1;rua=mailto:a@b.test"]));
        assert_eq!(found, Ok(vec![Rua::Mailto("a@b.test".into())]));
        let two = strings(&[
            "v=TLSRPTv1; rua=mailto:a@b.test",
            "v=TLSRPTv1; rua=mailto:c@d.test",
        ]);
        assert_eq!(parse(&two), Err(RecordError::Several(2)));
        assert_eq!(
            parse(&strings(&["v=TLSRPTv2; rua=mailto:a@b.test"])),
            Err(RecordError::Missing)
        );
        assert_eq!(parse(&[]), Err(RecordError::Missing));
    }

    #[test]
    fn unusable_uris_are_skipped() {
        let found = parse(&strings(&[
            "v=TLSRPTv1; rua=http://plain.test/r, ftp://x.test/, mailto:, https:, mailto:tls%2Brpt@example.test?subject=x",
        ]));
        assert_eq!(found, Ok(vec![Rua::Mailto("tls+rpt@example.test".into())]));
        let none = parse(&strings(&["v=TLSRPTv1; rua=http://plain.test/r"]));
        assert!(matches!(none, Err(RecordError::NoRua(_))));
        let bad_escape = parse(&strings(&["v=TLSRPTv1; rua=mailto:a%zz@b.test"]));
        assert!(matches!(bad_escape, Err(RecordError::NoRua(_))));
    }
}
