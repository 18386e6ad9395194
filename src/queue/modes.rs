//! Who may read the spool (DESIGN.md §6): the relay's user alone. Every
//! folder under `spool_dir` is 0700 and every file 0600, whatever the
//! umask, so queued mail, delivery states and the TLS memory are not
//! readable by other local users.
//!
//! The mode is given when a file or folder is created, and set again when
//! the umask took away some of it or the file already existed with another
//! mode (`open` with `O_CREAT` keeps an existing file's mode). What was
//! left wider by an older version or by hand is narrowed at start by
//! [`fix_tree`], which the spool reports in one log line.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every folder under `spool_dir`, `spool_dir` included.
pub const FOLDER_MODE: u32 = 0o700;
/// Mode of every file (and the control socket) under `spool_dir`.
pub const FILE_MODE: u32 = 0o600;
/// How deep [`fix_tree`] descends: the spool's layout is two levels.
const MAX_DEPTH: usize = 4;

/// Creates (or truncates) the file at `path` for writing, 0600.
pub fn create_private(path: &Path) -> io::Result<File> {
    restrict(
        File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(path)?,
    )
}

/// Writes `bytes` as the whole content of the file at `path`, 0600: what
/// `fs::write` does, for a file under `spool_dir`.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    create_private(path)?.write_all(bytes)
}

/// Replaces the file at `path` with `bytes` so that a crash leaves the
/// old content or the new, whole: a temp file beside it (0600), written
/// and synced, renamed over it, then the folder synced. The spool's small
/// state files (broken-TLS memory, MTA-STS cache, transit snapshots,
/// the TLS-RPT schedule) are all written this way.
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut out = create_private(&tmp)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    fs::rename(&tmp, path)?;
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    File::open(folder.unwrap_or(Path::new(".")))?.sync_all()
}

/// Opens the file at `path` with `options`, creating it 0600.
pub fn open_private(path: &Path, options: &mut fs::OpenOptions) -> io::Result<File> {
    restrict(options.mode(FILE_MODE).open(path)?)
}

/// Makes `file` 0600 when it is not: one `fstat`, and a `fchmod` only when
/// the umask or an earlier owner left it otherwise.
fn restrict(file: File) -> io::Result<File> {
    if file.metadata()?.permissions().mode() & 0o7777 != FILE_MODE {
        file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    }
    Ok(file)
}

/// Creates the folder at `path` 0700 if it is missing; its parents, if
/// missing too, get the usual mode (they are not the spool's). An existing
/// folder is made 0700.
pub fn create_folder(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(FOLDER_MODE).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
        Err(e) => return Err(e),
    }
    if fs::metadata(path)?.permissions().mode() & 0o7777 != FOLDER_MODE {
        fs::set_permissions(path, Permissions::from_mode(FOLDER_MODE))?;
    }
    Ok(())
}

/// What [`fix_tree`] found wider (or narrower) than it should be.
#[derive(Debug, Default)]
pub struct Fixes {
    /// Entries whose mode was changed.
    pub fixed: usize,
    /// Entries whose mode could not be changed (another owner).
    pub failed: usize,
    /// The first few, as `path 0644`, for the log line.
    pub examples: Vec<String>,
}

impl Fixes {
    /// Narrows the entry at `path` (described by its `lstat` metadata) to
    /// its spool mode. Symbolic links and other odd entries are left alone.
    pub fn check(&mut self, path: &Path, metadata: &fs::Metadata) {
        let kind = metadata.file_type();
        let wanted = if kind.is_dir() {
            FOLDER_MODE
        } else if kind.is_file() || kind.is_socket() {
            FILE_MODE
        } else {
            return;
        };
        let mode = metadata.permissions().mode() & 0o7777;
        if mode == wanted {
            return;
        }
        match fs::set_permissions(path, Permissions::from_mode(wanted)) {
            Ok(()) => self.fixed += 1,
            Err(_) => self.failed += 1,
        }
        if self.examples.len() < 3 {
            self.examples.push(format!("{} {mode:04o}", path.display()));
        }
    }

    /// The log line, when anything was found.
    pub fn log(&self, spool_dir: &Path) {
        if self.fixed + self.failed == 0 {
            return;
        }
        tracing::warn!(
            spool = %spool_dir.display(),
            fixed = self.fixed,
            not_fixed = self.failed,
            examples = %self.examples.join(", "),
            "spool modes fixed: folders are now 0700 and files 0600, readable by the relay's user alone"
        );
    }
}

/// Checks `dir` and everything under it, except the folders named in
/// `skip` (whose entries the caller checks on its own pass).
pub fn fix_tree(dir: &Path, skip: &[&str], fixes: &mut Fixes) -> io::Result<()> {
    fix_below(dir, skip, fixes, 0)
}

fn fix_below(dir: &Path, skip: &[&str], fixes: &mut Fixes, depth: usize) -> io::Result<()> {
    fixes.check(dir, &fs::symlink_metadata(dir)?);
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if metadata.is_dir() {
            match depth == 0 && skip.iter().any(|s| entry.file_name() == **s) {
                true => fixes.check(&path, &metadata),
                false => fix_below(&path, &[], fixes, depth + 1)?,
            }
        } else {
            fixes.check(&path, &metadata);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn created_files_and_folders_are_private_even_when_they_existed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let folder = dir.path().join("spool/state");
        create_folder(&folder).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&folder), FOLDER_MODE);
        let file = folder.join("x");
        fs::write(&file, "old").unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap_or_else(|e| panic!("{e}"));
        write_private(&file, b"new").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&file), FILE_MODE);
        assert_eq!(fs::read(&file).unwrap_or_default(), b"new");
        fs::set_permissions(&folder, Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        create_folder(&folder).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&folder), FOLDER_MODE);
    }

    #[test]
    fn fix_tree_narrows_everything_but_skipped_folders_contents() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        for folder in ["queue", "state", "quarantine/deeper"] {
            fs::create_dir_all(root.join(folder)).unwrap_or_else(|e| panic!("{e}"));
        }
        for file in [
            "queue/A",
            "state/A",
            "quarantine/deeper/B",
            "tls-memory.json",
        ] {
            fs::write(root.join(file), "x").unwrap_or_else(|e| panic!("{e}"));
            fs::set_permissions(root.join(file), Permissions::from_mode(0o644))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        fs::set_permissions(root, Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        let mut fixes = Fixes::default();
        fix_tree(root, &["queue"], &mut fixes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(root), FOLDER_MODE);
        assert_eq!(mode(&root.join("queue")), FOLDER_MODE);
        assert_eq!(mode(&root.join("queue/A")), 0o644, "left to the caller");
        assert_eq!(mode(&root.join("quarantine/deeper/B")), FILE_MODE);
        assert_eq!(mode(&root.join("tls-memory.json")), FILE_MODE);
        assert_eq!(fixes.failed, 0);
        assert!(fixes.fixed >= 5, "{fixes:?}");
    }
}
