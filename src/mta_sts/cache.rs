//! The policy cache on disk (RFC 8461 §5): `SPOOL_DIR/mta-sts/`, one file
//! per domain (folder 0700, files 0600 like the spool), written atomically
//! (temp file, fsync, rename, fsync of the folder) so a crash leaves the
//! old entry or the new one. The disk is the cache: nothing is held in
//! memory, so a reload or a restart (and `probe`) sees the same entries.
//!
//! File format, text: `id: ID`, `fetched: UNIX-SECONDS`, a blank line,
//! then the policy file as fetched.
//!
//! The async methods do their file I/O on the blocking pool, as the spool
//! does, never on a runtime thread.

use std::io;
use std::path::{Path, PathBuf};

use crate::queue::modes::{create_folder, replace_file};

/// A cached policy: the TXT id it was fetched under, when, and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    /// Seconds since the Unix epoch.
    pub fetched: u64,
    pub text: Vec<u8>,
}

impl Entry {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("id: {}\nfetched: {}\n\n", self.id, self.fetched).into_bytes();
        out.extend_from_slice(&self.text);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Entry> {
        let split = bytes.windows(2).position(|w| w == b"\n\n")?;
        let head = std::str::from_utf8(&bytes[..split]).ok()?;
        let mut lines = head.lines();
        let id = lines.next()?.strip_prefix("id: ")?.to_string();
        let fetched = lines.next()?.strip_prefix("fetched: ")?.parse().ok()?;
        Some(Entry {
            id,
            fetched,
            text: bytes[split + 2..].to_vec(),
        })
    }
}

/// The cache folder. `writable: false` (for `probe`) reads and never
/// writes: probe changes nothing.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
    writable: bool,
}

impl Cache {
    pub fn new(spool_dir: &Path, writable: bool) -> Cache {
        Cache {
            dir: spool_dir.join("mta-sts"),
            writable,
        }
    }

    /// The file of `domain`, if the name is safe as a file name (the
    /// canonical A-label form always is).
    fn file(&self, domain: &str) -> Option<PathBuf> {
        let safe = !domain.is_empty()
            && !domain.starts_with('.')
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
        safe.then(|| self.dir.join(domain))
    }

    /// The entry for `domain`; a missing or damaged file is no entry.
    pub async fn load(&self, domain: &str) -> Option<Entry> {
        let file = self.file(domain)?;
        let bytes = tokio::task::spawn_blocking(move || std::fs::read(file))
            .await
            .ok()?
            .ok()?;
        Entry::from_bytes(&bytes)
    }

    /// Stores `entry` for `domain`, atomically.
    pub async fn store(&self, domain: &str, entry: &Entry) -> io::Result<()> {
        let (Some(file), true) = (self.file(domain), self.writable) else {
            return Ok(());
        };
        let (dir, bytes) = (self.dir.clone(), entry.to_bytes());
        blocking(move || write_atomic(&dir, &file, &bytes)).await
    }
}

async fn blocking(work: impl FnOnce() -> io::Result<()> + Send + 'static) -> io::Result<()> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
}

/// The folder (0700), then the file replaced whole (0600).
fn write_atomic(dir: &Path, file: &Path, bytes: &[u8]) -> io::Result<()> {
    create_folder(dir)?;
    replace_file(file, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn round_trip_and_modes() {
        let spool = tempfile::tempdir().unwrap();
        let cache = Cache::new(spool.path(), true);
        let entry = Entry {
            id: "abc123".into(),
            fetched: 1_700_000_000,
            text: b"version: STSv1\r\nmode: enforce\r\n\r\nmx: a\r\n".to_vec(),
        };
        assert_eq!(cache.load("example.test").await, None);
        cache.store("example.test", &entry).await.unwrap();
        assert_eq!(cache.load("example.test").await, Some(entry.clone()));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&spool.path().join("mta-sts")), 0o700);
        assert_eq!(mode(&spool.path().join("mta-sts/example.test")), 0o600);
        // Read-only (probe) never writes.
        let reader = Cache::new(spool.path(), false);
        let newer = Entry {
            fetched: 1_700_000_100,
            ..entry.clone()
        };
        reader.store("example.test", &newer).await.unwrap();
        assert_eq!(reader.load("example.test").await, Some(entry.clone()));
        // Names that are not file names are not cached.
        assert!(cache.store("../x", &entry).await.is_ok());
        assert!(!spool.path().join("x").exists());
    }

    #[test]
    fn damaged_files_are_no_entry() {
        for bytes in [
            &b""[..],
            b"id: a\n",
            b"id: a\nfetched: x\n\nbody",
            b"garbage\n\n",
        ] {
            assert_eq!(Entry::from_bytes(bytes), None, "{bytes:?}");
        }
    }
}
