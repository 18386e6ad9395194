//! The `_mta-sts.DOMAIN` TXT record (RFC 8461 §3.1): `v=STSv1; id=...;`.
//! A domain has a policy only when exactly one of its TXT records starts
//! with `v=STSv1` and that record carries a valid `id`; anything else
//! (none, two, a bad id) reads as "no policy".

/// A valid discovery record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1 to 32 letters and digits; a change tells senders to refetch.
    pub id: String,
    /// The record as published, for `probe`.
    pub text: String,
}

/// The one valid record among `txts` (each TXT record's strings joined),
/// or `None`.
pub fn discover(txts: &[String]) -> Option<Record> {
    let mut candidates = txts.iter().filter(|t| is_sts(t));
    let only = candidates.next()?;
    if candidates.next().is_some() {
        return None;
    }
    let id = fields(only).find_map(|(key, value)| (key == "id").then_some(value))?;
    let valid = (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then(|| Record {
        id: id.to_string(),
        text: only.clone(),
    })
}

/// Whether the record's first field is `v=STSv1` (RFC 8461 §3.1: the
/// version comes first, exactly so spelled).
fn is_sts(text: &str) -> bool {
    fields(text)
        .next()
        .is_some_and(|(key, value)| key == "v" && value == "STSv1")
}

/// `key=value` fields separated by `;`, blanks around each trimmed.
fn fields(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(';')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(txts: &[&str]) -> Option<String> {
        let owned: Vec<String> = txts.iter().map(|t| t.to_string()).collect();
        discover(&owned).map(|r| r.id)
    }

    #[test]
    fn table() {
        let some = |s: &str| Some(s.to_string());
        let cases: &[(&[&str], Option<String>)] = &[
            (&["v=STSv1; id=20260101T000000;"], some("20260101T000000")),
            (&["v=STSv1; id=2026010100;"], some("2026010100")),
            (&["v=STSv1;id=abc"], some("abc")),
            (&["v=STSv1; id=abc; ext=1"], some("abc")),
            (&["v=spf1 -all", "v=STSv1; id=x1"], some("x1")),
            (&["v=STSv1; id=a", "v=STSv1; id=b"], None),
            (&["v=STSv1;"], None),
            (&["v=STSv1; id="], None),
            (&["v=STSv1; id=has-dash"], None),
            (&[&format!("v=STSv1; id={}", "a".repeat(33))], None),
            (
                &[&format!("v=STSv1; id={}", "a".repeat(32))],
                some(&"a".repeat(32)),
            ),
            (&["id=abc; v=STSv1"], None),
            (&["v=STSv2; id=abc"], None),
            (&[], None),
        ];
        for (txts, want) in cases {
            assert_eq!(&ids(txts), want, "{txts:?}");
        }
    }
}
