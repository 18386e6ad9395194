//! The spool's `spare/` folder: emptied files of finished messages,
//! reused for new ones (see "Spare files" in [`spool`](super)).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::SPARE_LIMIT;
use crate::queue::modes::{self, create_private, Fixes};

/// The emptied files in `spare/`, by number; see "Spare files" above.
#[derive(Debug)]
pub(super) struct Spares {
    folder: PathBuf,
    free: std::sync::Mutex<Vec<u64>>,
    next: AtomicU64,
}

impl Spares {
    /// Takes stock of `folder` (creating it), emptying every spare and
    /// removing what is not one.
    pub(super) fn open(folder: PathBuf, fixes: &mut Fixes) -> io::Result<Spares> {
        modes::create_folder(&folder)?;
        let mut free = Vec::new();
        for entry in fs::read_dir(&folder)? {
            let entry = entry?;
            let path = entry.path();
            if let Ok(metadata) = entry.metadata() {
                fixes.check(&path, &metadata);
            }
            let number = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u64>().ok());
            match number {
                Some(n) if free.len() < SPARE_LIMIT && emptied(&path).is_ok() => free.push(n),
                _ => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let next = free.iter().max().map_or(0, |n| n + 1);
        Ok(Spares {
            folder,
            free: std::sync::Mutex::new(free),
            next: AtomicU64::new(next),
        })
    }

    /// A file for a new message at `path`: a spare renamed there, or a
    /// new file when none is left.
    pub(super) fn take(&self, path: &Path) -> io::Result<File> {
        let spare = self.free.lock().ok().and_then(|mut free| free.pop());
        if let Some(n) = spare {
            if fs::rename(self.folder.join(n.to_string()), path).is_ok() {
                if let Ok(file) = open_emptied(path) {
                    return Ok(file);
                }
            }
        }
        create_private(path)
    }

    /// Makes the file at `path` a spare; false when it must be unlinked
    /// instead (the pool is full, or the rename failed).
    pub(super) fn put(&self, path: &Path) -> bool {
        // Racing removals may overshoot the limit by a few; the lock is
        // not held across the file operations.
        if self
            .free
            .lock()
            .map_or(true, |free| free.len() >= SPARE_LIMIT)
        {
            return false;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let spare = self.folder.join(n.to_string());
        if fs::rename(path, &spare).is_err() {
            return false;
        }
        match (empty(&spare), self.free.lock()) {
            (Ok(()), Ok(mut free)) => free.push(n),
            _ => {
                let _ = fs::remove_file(&spare);
            }
        }
        true
    }
}

/// Opens the file at `path` for writing, truncated to nothing.
fn open_emptied(path: &Path) -> io::Result<File> {
    File::options().write(true).truncate(true).open(path)
}

/// Truncates the file at `path` to nothing.
fn empty(path: &Path) -> io::Result<()> {
    open_emptied(path).map(drop)
}

/// Like [`empty`], but only opens a file that is not empty already.
pub(super) fn emptied(path: &Path) -> io::Result<()> {
    match fs::metadata(path)?.len() {
        0 => Ok(()),
        _ => empty(path),
    }
}
