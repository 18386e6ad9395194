//! SHA-256 fingerprints as administrators exchange them.
//!
//! Two spellings on purpose: the certificate fingerprint the way `openssl x509
//! -fingerprint -sha256` prints it (so it can be compared by eye), and the
//! public-key pin as `sha256:<lowercase hex>`, the value `tls = "pinned"`
//! takes in `fingerprints` (DESIGN.md §3). Pinning the SubjectPublicKeyInfo
//! survives a renewal that keeps the key.

use aws_lc_rs::digest::{digest, SHA256};

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, data).as_ref());
    out
}

/// `AB:CD:…`, uppercase with colons, as openssl prints certificate fingerprints.
pub fn openssl_fingerprint(der: &[u8]) -> String {
    sha256(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `sha256:<lowercase hex>` of DER data (certificate or SubjectPublicKeyInfo).
pub fn pin(der: &[u8]) -> String {
    let hex: String = sha256(der).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_match_openssl_and_config() {
        // printf abc | openssl dgst -sha256
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(pin(b"abc"), format!("sha256:{abc}"));
        let upper = openssl_fingerprint(b"abc");
        assert_eq!(upper.replace(':', "").to_lowercase(), abc);
        assert!(upper.starts_with("BA:78:16:BF:"));
    }
}
