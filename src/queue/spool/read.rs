//! Reading the spool's files: the ids in `queue/`, a message, an
//! envelope. Safe while a relay runs on the spool (they only read).

use std::fs::{self, File};
use std::io;
use std::path::Path;

use super::{SpoolError, MAGIC};
use crate::queue::envelope::Envelope;

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
