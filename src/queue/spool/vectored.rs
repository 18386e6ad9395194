//! Appending a batch at the end of the active segment from the records'
//! own buffers: `pwritev(2)`, as many calls as the kernel's limit on
//! slices and short writes ask for, so the committer never copies a batch
//! into one buffer of its own.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use super::{sync_data, Active};

/// At most this many slices go to one `pwritev` (the kernel's `IOV_MAX`);
/// a batch of more records takes several calls.
pub(super) const MAX_SLICES: usize = libc::UIO_MAXIOV as usize;

/// Writes `bytes` at the end of `active`, synced when `durable`; returns
/// where they start (see [`put_parts`]).
pub(super) fn put(active: &mut Active, bytes: &[u8], durable: bool) -> io::Result<u64> {
    put_parts(active, &[bytes], bytes.len(), durable)
}

/// Writes `parts` (`len` bytes in all) at the end of `active`, synced
/// when `durable`; returns where they start. On failure the stretch is
/// zeroed (no part of the batch can be read back as a record) and the
/// segment is written no more.
pub(super) fn put_parts(
    active: &mut Active,
    parts: &[&[u8]],
    len: usize,
    durable: bool,
) -> io::Result<u64> {
    let start = active.offset;
    let result = write_all_vectored_at(&active.file, parts, start).and_then(|()| match durable {
        true => sync_data(&active.file),
        false => Ok(()),
    });
    match result {
        Ok(()) => {
            active.offset += len as u64;
            active.dirty = !durable;
            Ok(start)
        }
        Err(e) => {
            let zeros = vec![0; len.min(ZEROS)];
            let mut at = start;
            let end = start + len as u64;
            while at < end {
                let n = zeros.len().min((end - at) as usize);
                if active.file.write_all_at(&zeros[..n], at).is_err() {
                    break;
                }
                at += n as u64;
            }
            let _ = sync_data(&active.file);
            active.broken = true;
            Err(e)
        }
    }
}

/// A failed batch is zeroed this many bytes at a time.
const ZEROS: usize = 64 << 10;

/// Writes `parts` one after another from `offset` of `file`: one
/// `pwritev` per [`MAX_SLICES`] parts, and after a short write another
/// from where it stopped.
pub(super) fn write_all_vectored_at(
    file: &File,
    parts: &[&[u8]],
    mut offset: u64,
) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| IoSlice::new(p))
        .collect();
    let mut rest: &mut [IoSlice<'_>] = &mut slices;
    while !rest.is_empty() {
        let count = rest.len().min(MAX_SLICES);
        let written = pwritev(file, &rest[..count], offset)?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        offset += written as u64;
        IoSlice::advance_slices(&mut rest, written);
    }
    Ok(())
}

/// One `pwritev(2)` of `slices` (at most [`MAX_SLICES`]) at `offset`,
/// tried again when a signal interrupts it; the bytes written.
fn pwritev(file: &File, slices: &[IoSlice<'_>], offset: u64) -> io::Result<usize> {
    let (Ok(offset), Ok(count)) = (
        libc::off_t::try_from(offset),
        libc::c_int::try_from(slices.len()),
    ) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    loop {
        // SAFETY: `IoSlice` is guaranteed ABI-compatible with `iovec` on
        // Unix; the `count` slices are borrowed for the whole call, which
        // only reads them, and the descriptor is `file`'s own, open.
        let written = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                slices.as_ptr().cast::<libc::iovec>(),
                count,
                offset,
            )
        };
        match usize::try_from(written) {
            Ok(written) => return Ok(written),
            Err(_) => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::Interrupted => continue,
                e => return Err(e),
            },
        }
    }
}
