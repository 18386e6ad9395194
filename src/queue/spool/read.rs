//! Reading the spool: the queued messages' ids, a message, an envelope,
//! from segments and from files in `queue/`. Safe while a relay runs on
//! the spool (it only reads).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::committer::lock;
use super::index::{self, Index};
use super::record::{self, Kind};
use super::{valid_id, SpoolError, MAGIC};
use crate::queue::envelope::Envelope;

/// The queued messages of a spool as read from its folder: the relay's
/// own view, kept up to date, or one an administrator's command (or a
/// test) builds by reading the segments once. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SpoolView {
    pub(super) queue: PathBuf,
    pub(super) segments: PathBuf,
    pub(super) index: Arc<Mutex<Index>>,
    /// `state/` of a spool written by an earlier release, while it holds
    /// states (see [`SpoolView::state`]).
    pub(super) old_states: Option<PathBuf>,
}

impl SpoolView {
    pub(super) fn new(dir: &Path, index: Arc<Mutex<Index>>) -> SpoolView {
        let old_states = Some(dir.join("state")).filter(|dir| dir.is_dir());
        SpoolView {
            queue: dir.join("queue"),
            segments: dir.join("segments"),
            index,
            old_states,
        }
    }

    /// Reads the spool under `dir` as it is now, for reading only: nothing
    /// is created, locked or changed (`tlsrelay queue list` while the relay
    /// runs). A torn end of the segment being written is simply not there yet.
    pub fn open(dir: &Path) -> Result<SpoolView, SpoolError> {
        let view = SpoolView::new(dir, Arc::default());
        let mut index = Index::default();
        index.scan(&view.segments, u32::MAX)?;
        *lock(&view.index) = index;
        Ok(view)
    }

    /// The queued messages' ids, oldest first.
    pub fn ids(&self) -> Result<Vec<String>, SpoolError> {
        let mut ids = match self.queue.is_dir() {
            true => list_ids(&self.queue)?,
            false => Vec::new(),
        };
        ids.extend(lock(&self.index).ids());
        ids.sort_unstable();
        Ok(ids)
    }

    /// True when message `id` is queued.
    pub fn contains(&self, id: &str) -> bool {
        valid_id(id) && (lock(&self.index).contains(id) || self.queue.join(id).is_file())
    }

    /// A queued message: its envelope and content.
    pub fn read(&self, id: &str) -> Result<(Envelope, Vec<u8>), SpoolError> {
        match self.record(id)? {
            Some((path, mut bytes, start)) => {
                let (envelope, head) = parse_head(&path, &bytes[start..])?;
                bytes.drain(..start + head);
                Ok((envelope, bytes))
            }
            None => read_message(&self.queue.join(id)),
        }
    }

    /// The envelope of a queued message, and the content's size.
    pub fn read_envelope(&self, id: &str) -> Result<(Envelope, u64), SpoolError> {
        match self.record(id)? {
            Some((path, bytes, start)) => {
                let (envelope, head) = parse_head(&path, &bytes[start..])?;
                Ok((envelope, (bytes.len() - start - head) as u64))
            }
            None => read_envelope(&self.queue.join(id)),
        }
    }

    /// The latest delivery state of queued message `id` as saved (JSON):
    /// one not written yet, else its latest state record, else (a message
    /// from an earlier release, never attempted since) its file in
    /// `state/`. `None`: none, or unreadable (the message starts over,
    /// which can duplicate but never lose).
    pub fn state(&self, id: &str) -> Option<Vec<u8>> {
        if !valid_id(id) {
            return None;
        }
        let located = {
            let mut index = lock(&self.index);
            if let Some((_, json)) = index.unwritten.get(id) {
                return Some(json.clone());
            }
            index.locate_state(&self.segments, id)
        };
        match located {
            Some(found) => {
                let (loc, file) = found.ok()?;
                let bytes = index::read_raw(&file, loc).ok()?;
                match record::parse(&bytes) {
                    Ok(r) if r.kind == Kind::State && r.id == id => Some(r.payload.to_vec()),
                    _ => None,
                }
            }
            None => fs::read(self.old_states.as_ref()?.join(id)).ok(),
        }
    }

    /// The record of message `id` when it is in a segment: where it is
    /// (for errors), its bytes, and where the message starts in them.
    /// `None`: look in `queue/`.
    fn record(&self, id: &str) -> Result<Option<(PathBuf, Vec<u8>, usize)>, SpoolError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let located = lock(&self.index).locate(&self.segments, id);
        let Some(found) = located else {
            return Ok(None);
        };
        let (loc, file) = found.map_err(|source| SpoolError::File {
            path: self.segments.clone(),
            source,
        })?;
        let path = index::segment_path(&self.segments, loc.segment);
        let file_error = |source| SpoolError::File {
            path: path.clone(),
            source,
        };
        let bytes = index::read_raw(&file, loc).map_err(file_error)?;
        let corrupt = |why: &str| SpoolError::Corrupt {
            path: path.clone(),
            message: format!("the record of {id} at offset {}: {why}", loc.offset),
        };
        match record::parse(&bytes) {
            Ok(r) if r.kind == Kind::Message && r.id == id => {}
            Ok(_) => return Err(corrupt("another record is there")),
            Err(e) => return Err(corrupt(&format!("{e:?}"))),
        }
        let start = record::HEAD + id.len();
        Ok(Some((path, bytes, start)))
    }
}

/// The committed messages' ids in a `queue/` folder, oldest first. Safe
/// while a relay runs on the spool (it only reads).
pub fn list_ids(queue: &Path) -> Result<Vec<String>, SpoolError> {
    let folder_error = |source| SpoolError::Folder {
        path: queue.to_path_buf(),
        source,
    };
    let mut ids = Vec::new();
    for entry in fs::read_dir(queue).map_err(folder_error)? {
        let name = entry.map_err(folder_error)?.file_name();
        let name = name.to_string_lossy();
        if !name.ends_with(".tmp") && !name.starts_with('.') {
            ids.push(name.into_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

/// Reads one message file: its envelope and content. Safe while a relay
/// runs on the spool (it only reads).
pub fn read_message(path: &Path) -> Result<(Envelope, Vec<u8>), SpoolError> {
    let data = fs::read(path).map_err(|source| SpoolError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let (envelope, start) = parse_head(path, &data)?;
    Ok((envelope, data[start..].to_vec()))
}

/// Reads only the envelope of one message file, and the content's size:
/// what a queue listing needs, without reading every message whole.
pub fn read_envelope(path: &Path) -> Result<(Envelope, u64), SpoolError> {
    use std::io::BufRead;
    let file_error = |source| SpoolError::File {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(file_error)?;
    let len = file.metadata().map_err(file_error)?.len();
    // The magic line and the envelope line: all parse_head looks at.
    let mut head = Vec::new();
    let mut reader = io::BufReader::new(file);
    for _ in 0..2 {
        reader.read_until(b'\n', &mut head).map_err(file_error)?;
    }
    let (envelope, start) = parse_head(path, &head)?;
    Ok((envelope, len.saturating_sub(start as u64)))
}

/// The envelope at the start of a message file's bytes, and where the
/// content begins.
pub(super) fn parse_head(path: &Path, data: &[u8]) -> Result<(Envelope, usize), SpoolError> {
    let corrupt = |message: &str| SpoolError::Corrupt {
        path: path.to_path_buf(),
        message: message.into(),
    };
    let rest = data
        .strip_prefix(MAGIC.as_bytes())
        .ok_or_else(|| corrupt("not a tlsrelay spool file"))?;
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("envelope not terminated"))?;
    let envelope =
        serde_json::from_slice(&rest[..end]).map_err(|e| corrupt(&format!("envelope: {e}")))?;
    Ok((envelope, MAGIC.len() + end + 1))
}
