//! Random numbers from the operating system (through aws-lc), for retry
//! jitter and MX shuffling: nothing here needs to be secret, only unbiased
//! enough that servers do not all retry in step.

pub fn u64() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// A number in [0, 1).
pub fn unit() -> f64 {
    (u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Fisher–Yates, in place.
pub fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = (u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}
