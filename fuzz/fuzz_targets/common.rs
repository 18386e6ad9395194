//! Helpers the fuzz targets share: how the first bytes of an input choose
//! a variant and a split point, and the checks on split-independence.
#![allow(dead_code)] // each target uses some of these

/// Takes the first byte as a selector and the next two as a split point
/// within the rest: `(selector, split, rest)`. `None` for inputs too short.
pub fn header(data: &[u8]) -> Option<(u8, usize, &[u8])> {
    let (&[selector, a, b], rest) = data.split_first_chunk::<3>()?;
    let split = usize::from(u16::from_le_bytes([a, b])) % (rest.len() + 1);
    Some((selector, split, rest))
}

/// Offsets that cut `len` bytes into one-byte pieces, for inputs small
/// enough that this stays fast; otherwise none.
pub fn every_byte(len: usize) -> Vec<usize> {
    if len <= 2048 {
        (1..len).collect()
    } else {
        Vec::new()
    }
}

/// True when every CR is followed by LF and every LF follows a CR.
pub fn crlf_only(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => bytes.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && bytes[i - 1] == b'\r',
        _ => true,
    })
}
