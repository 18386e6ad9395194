//! Broken-TLS memory (DESIGN.md §5): when a server fails the top rungs of
//! the opportunistic ladder, later messages start where it last worked,
//! for `[delivery] broken_tls_memory`, across restarts.
//!
//! Kept in `SPOOL_DIR/tls-memory.json` as `{ "ip:port": [rung, until] }`,
//! rewritten (temp file, rename) on every change. Losing it only costs a
//! failed handshake or two.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::policy::Rung;

pub struct TlsMemory {
    file: PathBuf,
    ttl: Duration,
    entries: Mutex<HashMap<String, (Rung, i64)>>,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl TlsMemory {
    /// Loads what an earlier run remembered (nothing, if unreadable).
    pub fn open(spool_dir: &Path, ttl: Duration) -> Self {
        let file = spool_dir.join("tls-memory.json");
        let entries = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        TlsMemory {
            file,
            ttl,
            entries: Mutex::new(entries),
        }
    }

    /// The rung to start at for `server`.
    pub fn start(&self, server: &str) -> Rung {
        let Ok(entries) = self.entries.lock() else {
            return Rung::Modern;
        };
        match entries.get(server) {
            Some((rung, until)) if *until > now() => *rung,
            _ => Rung::Modern,
        }
    }

    /// `server` failed at `rung`: start lower next time.
    pub fn failed(&self, server: &str, rung: Rung) {
        let Some(lower) = rung.below() else { return };
        if self.ttl.is_zero() {
            return;
        }
        let until = now() + self.ttl.as_secs() as i64;
        self.update(|entries| {
            entries.insert(server.to_string(), (lower, until));
        });
    }

    fn update(&self, change: impl FnOnce(&mut HashMap<String, (Rung, i64)>)) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let now = now();
        entries.retain(|_, (_, until)| *until > now);
        change(&mut entries);
        let Ok(bytes) = serde_json::to_vec(&*entries) else {
            return;
        };
        let tmp = self.file.with_extension("json.tmp");
        if std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &self.file))
            .is_err()
        {
            tracing::warn!(file = %self.file.display(), "could not save the broken-TLS memory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_remembered_across_restarts_and_forgotten_later() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let memory = TlsMemory::open(dir.path(), Duration::from_secs(3600));
        assert_eq!(memory.start("192.0.2.1:25"), Rung::Modern);
        memory.failed("192.0.2.1:25", Rung::Modern);
        assert_eq!(memory.start("192.0.2.1:25"), Rung::Tls12);
        memory.failed("192.0.2.1:25", Rung::Tls12);
        let reopened = TlsMemory::open(dir.path(), Duration::from_secs(3600));
        assert_eq!(reopened.start("192.0.2.1:25"), Rung::Plaintext);
        assert_eq!(reopened.start("192.0.2.2:25"), Rung::Modern);
        let forgetful = TlsMemory::open(dir.path(), Duration::ZERO);
        forgetful.failed("192.0.2.3:25", Rung::Modern);
        assert_eq!(forgetful.start("192.0.2.3:25"), Rung::Modern);
    }
}
