//! The DNSSEC trust anchor (`[dns] trust_anchor`): a file of DNSKEY
//! records in zone-file syntax, or hickory's built-in IANA root keys
//! (KSK-2017 and KSK-2024) when the key is empty.
//!
//! hickory's parser says what is wrong but not where; an administrator
//! needs `FILE:LINE:COL`, so the file is cut into records (a record runs
//! on while a `(` is open, RFC 1035 §5.1, which hickory's parser does not
//! take) and each is parsed alone to place the first bad one.
//!
//! For an anchor below the root (a private tree, the tests' `test.`), list
//! every DNSKEY of that zone, the KSK and the ZSK: with the KSK alone
//! hickory looks for the zone's DS in the parent and finds the DNSKEY RRset
//! bogus (tested with hickory 0.26.3).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use hickory_resolver::proto::dnssec::TrustAnchors;

/// Why a trust-anchor file cannot be used, placed in that file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), position.map_or(String::new(), |(l, c)| format!(":{l}:{c}")))]
pub struct AnchorError {
    pub path: PathBuf,
    /// 1-based line and column; `None` when the file as a whole is at fault.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

/// The anchors `[dns] trust_anchor` names, or the root keys hickory ships.
pub fn load(path: Option<&Path>) -> Result<Arc<TrustAnchors>, AnchorError> {
    let Some(path) = path else {
        return Ok(Arc::new(TrustAnchors::default()));
    };
    let fail = |position, message: String| AnchorError {
        path: path.to_path_buf(),
        position,
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(None, format!("cannot read the trust anchor file: {e}")))?;
    let records = records(&text);
    if records.is_empty() {
        return Err(fail(
            None,
            "no DNSKEY record in the trust anchor file (one per line, as `dig DNSKEY ZONE` prints them)".into(),
        ));
    }
    for record in &records {
        if let Err(e) = TrustAnchors::from_str(&record.text) {
            return Err(fail(Some(record.position), explain(&e.to_string())));
        }
    }
    let joined: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    TrustAnchors::from_str(&joined.join("\n"))
        .map(Arc::new)
        .map_err(|e| fail(None, explain(&e.to_string())))
}

/// The zone the anchors are for: the owner of the file's first record,
/// or the root for hickory's own keys (and for a file that cannot be read:
/// [`load`] reports that).
pub fn zone(path: Option<&Path>) -> String {
    path.and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| {
            let first = records(&text).into_iter().next()?;
            first.text.split_whitespace().next().map(str::to_string)
        })
        .unwrap_or_else(|| ".".to_string())
}

fn explain(error: &str) -> String {
    if error.contains("DS") {
        return format!(
            "{error}: the trust anchor holds DNSKEY records, not DS (for a private zone, list its KSK and ZSK)"
        );
    }
    format!("not a DNSKEY record ({error})")
}

/// One record of a zone-file text, with where it starts.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    text: String,
    position: (usize, usize),
}

/// The records of `text`: comments (`;` to the end of the line) and blank
/// lines dropped, lines joined while a parenthesis is open.
fn records(text: &str) -> Vec<Record> {
    let mut out = Vec::new();
    let mut current: Option<Record> = None;
    let mut depth = 0usize;
    for (i, line) in text.lines().enumerate() {
        let content = line.split(';').next().unwrap_or("");
        if content.trim().is_empty() && depth == 0 {
            continue;
        }
        let record = current.get_or_insert_with(|| Record {
            text: String::new(),
            position: (
                i + 1,
                content.chars().take_while(|c| c.is_whitespace()).count() + 1,
            ),
        });
        // hickory's parser takes one record per line: join, unwrapped.
        record.text.push_str(&content.replace(['(', ')'], " "));
        record.text.push(' ');
        for c in content.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if depth == 0 {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KSK: &str = "test. IN DNSKEY 257 3 13 MTJrr58Vg1jr+oaNnl1Qof+7yjlklX/HXljAsYKwA95W+NBUY8TCT6F4Fbv1g+fqC1fneJe3JZbuauqIJRjBlA== ;{id = 51858 (ksk), size = 256b}";

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("anchor.key");
        std::fs::write(&path, text).expect("write anchor");
        (dir, path)
    }

    fn load_err(path: &Path) -> AnchorError {
        match load(Some(path)) {
            Ok(_) => panic!("{} should be refused", path.display()),
            Err(e) => e,
        }
    }

    #[test]
    fn no_file_means_the_iana_root_keys() {
        let anchors = load(None).expect("root keys");
        assert_eq!(anchors.len(), 2, "KSK-2017 and KSK-2024");
    }

    #[test]
    fn dnskey_lines_with_comments_and_parentheses_load() {
        let split = "test. IN DNSKEY ( 256 3 13\n   cZ+r/UBF0sWG3Or7xzgKgUMptYH82TOh63IiAmi4yVOuLnGn1lUAEY5ypQfmJfpqjllXmW36ARwSBKVmhSPohg== ) ; zsk\n";
        let (_dir, path) = write(&format!("; anchor for test.\n\n{KSK}\n{split}"));
        load(Some(&path)).expect("loads");
    }

    #[test]
    fn a_bad_record_is_placed_by_line_and_column() {
        let (_dir, path) = write(&format!(
            "{KSK}\n\n  test. IN DNSKEY 257 3 13 !!notbase64\n"
        ));
        let error = load_err(&path);
        assert_eq!(error.position, Some((3, 3)), "{error}");
        let shown = error.to_string();
        assert!(
            shown.starts_with(&format!("{}:3:3: ", path.display())),
            "{shown}"
        );
    }

    #[test]
    fn a_ds_record_says_dnskey_is_needed() {
        let ds = "test. IN DS 12345 13 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE1C1A1B1C1D1E1F1A1B1C1D1E";
        let (_dir, path) = write(&format!("{KSK}\n{ds}\n"));
        let error = load_err(&path);
        assert_eq!(error.position, Some((2, 1)));
        assert!(error.message.contains("not DS"), "{error}");
    }

    #[test]
    fn an_empty_or_missing_file_is_refused() {
        let (_dir, path) = write("; nothing here\n\n");
        let error = load_err(&path);
        assert!(error.message.contains("no DNSKEY"), "{error}");
        let error = load_err(Path::new("/nonexistent/anchor.key"));
        assert!(error.message.contains("cannot read"), "{error}");
    }
}
