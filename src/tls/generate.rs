//! Self-signed certificates for first runs and tests (`gen-cert`, `generate_if_missing`).
//!
//! A self-signed certificate still gives opportunistic TLS (most MTAs do not
//! verify), so a fresh install encrypts from its first connection. Partners
//! with forced TLS need a CA-issued certificate or a pinned fingerprint.

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, RsaKeySize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub hostnames: Vec<String>,
    pub key_type: KeyType,
    pub days: u32,
}

pub struct Written {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A generated certificate and its key, as PEM.
pub struct Generated {
    pub cert_pem: String,
    pub key_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("at least one --hostname is needed")]
    NoHostname,
    #[error("--days must be at least 1")]
    NoDays,
    #[error("{name:?} is not usable as a certificate name ({reason})")]
    BadHostname { name: String, reason: String },
    #[error("cannot generate the certificate: {0}")]
    Generate(String),
    #[error("{} already exists; pass --force to replace it", path.display())]
    Exists { path: PathBuf },
    #[error("found {} but not {}; tlsrelay will not generate one half of a certificate and key pair: restore the missing file or remove both", existing.display(), missing.display())]
    HalfPair { existing: PathBuf, missing: PathBuf },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Makes a self-signed certificate: CN = first hostname, every hostname a SAN
/// (IP literals as IP SANs), EKU serverAuth and clientAuth (the same
/// certificate serves STARTTLS and outbound client authentication).
pub fn generate(options: &Options) -> Result<Generated, GenError> {
    let first = options.hostnames.first().ok_or(GenError::NoHostname)?;
    if options.days == 0 {
        return Err(GenError::NoDays);
    }
    for name in &options.hostnames {
        check_hostname(name)?;
    }
    let mut params = CertificateParams::new(options.hostnames.clone()).map_err(|e| {
        let name = options
            .hostnames
            .iter()
            .find(|n| CertificateParams::new(vec![(*n).clone()]).is_err())
            .unwrap_or(first);
        GenError::BadHostname {
            name: name.clone(),
            reason: e.to_string(),
        }
    })?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, first.as_str());
    let now = time::OffsetDateTime::now_utc();
    // Backdate a little so peers with a slow clock accept it at once.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(options.days));
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = key_pair(options.key_type).map_err(|e| GenError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| GenError::Generate(e.to_string()))?;
    Ok(Generated {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A certificate name must be what a peer can ask for: an IP address, a
/// DNS name (A-labels), or a DNS name under a `*.` wildcard label.
fn check_hostname(name: &str) -> Result<(), GenError> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let dns = name.strip_prefix("*.").unwrap_or(name);
    let bad = |reason: String| {
        Err(GenError::BadHostname {
            name: name.to_string(),
            reason,
        })
    };
    match dns.parse::<crate::config::values::DomainName>() {
        // A certificate carries the A-label form, exactly as peers ask for it.
        Ok(canonical) if canonical.as_str() == dns.to_ascii_lowercase() => Ok(()),
        Ok(canonical) => bad(format!(
            "write it as {}{canonical}",
            if dns.len() < name.len() { "*." } else { "" }
        )),
        Err(crate::config::domain::DomainError::Syntax { why, .. }) => bad(why.to_string()),
        Err(other) => bad(other.to_string()),
    }
}

fn key_pair(key_type: KeyType) -> Result<KeyPair, rcgen::Error> {
    let rsa = |size| KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size);
    match key_type {
        KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        KeyType::Rsa2048 => rsa(RsaKeySize::_2048),
        KeyType::Rsa3072 => rsa(RsaKeySize::_3072),
        KeyType::Rsa4096 => rsa(RsaKeySize::_4096),
    }
}

/// Writes `DIR/NAME.crt` and `DIR/NAME.key` (mode 0600), creating DIR.
pub fn write_files(
    options: &Options,
    dir: &Path,
    name: &str,
    force: bool,
) -> Result<Written, GenError> {
    let written = Written {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    write_to(options, &written.cert, &written.key, force)?;
    Ok(written)
}

/// For `[tls] generate_if_missing`: writes a certificate and key at the
/// configured paths unless both exist. Returns whether it wrote them.
pub fn generate_if_missing(options: &Options, cert: &Path, key: &Path) -> Result<bool, GenError> {
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok(false),
        // One of the two alone is an administrator's file: never replace it.
        (true, false) | (false, true) => {
            let (existing, missing) = if cert.exists() {
                (cert, key)
            } else {
                (key, cert)
            };
            return Err(GenError::HalfPair {
                existing: existing.to_owned(),
                missing: missing.to_owned(),
            });
        }
        (false, false) => {}
    }
    write_to(options, cert, key, false)?;
    Ok(true)
}

fn write_to(options: &Options, cert: &Path, key: &Path, force: bool) -> Result<(), GenError> {
    if !force {
        if let Some(path) = [cert, key].into_iter().find(|p| p.exists()) {
            return Err(GenError::Exists {
                path: path.to_owned(),
            });
        }
    }
    let generated = generate(options)?;
    for path in [cert, key] {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| GenError::Write {
                path: parent.to_owned(),
                source,
            })?;
        }
    }
    // Key first, with its mode set at creation, so it is never readable by others.
    write_file(key, generated.key_pem.as_bytes(), 0o600)?;
    write_file(cert, generated.cert_pem.as_bytes(), 0o644)
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), GenError> {
    let fail = |source| GenError::Write {
        path: path.to_owned(),
        source,
    };
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, mode);
    let mut file = open.open(path).map_err(fail)?;
    // `mode` only applies to new files; a replaced key must be tightened too.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(fail)?;
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(contents).map_err(fail)?;
    file.sync_all().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            hostnames: vec!["relay.example.test".into(), "192.0.2.5".into()],
            key_type: KeyType::EcdsaP256,
            days: 30,
        }
    }

    #[test]
    fn generate_if_missing_writes_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (
            dir.path().join("certs/relay.crt"),
            dir.path().join("certs/relay.key"),
        );
        assert!(generate_if_missing(&options(), &cert, &key).unwrap());
        let first = std::fs::read(&cert).unwrap();
        assert!(!generate_if_missing(&options(), &cert, &key).unwrap());
        assert_eq!(
            std::fs::read(&cert).unwrap(),
            first,
            "existing pair was replaced"
        );
        let identity = crate::tls::certs::load_identity(&cert, &key).unwrap();
        assert!(identity.warnings.is_empty(), "{:?}", identity.warnings);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn half_a_pair_is_never_completed() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("relay.crt"), dir.path().join("relay.key"));
        std::fs::write(&key, "admin's key").unwrap();
        let err = generate_if_missing(&options(), &cert, &key).unwrap_err();
        assert!(matches!(err, GenError::HalfPair { .. }), "{err:?}");
        assert!(!cert.exists());
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "admin's key");
    }

    #[test]
    fn bad_input_is_refused() {
        let mut o = options();
        o.days = 0;
        assert!(matches!(generate(&o), Err(GenError::NoDays)));
        o.hostnames.clear();
        assert!(matches!(generate(&o), Err(GenError::NoHostname)));
    }

    #[test]
    fn names_that_are_not_dns_names_are_refused() {
        let refused = [
            "relay example.test",
            "relay_host!.test",
            "-relay.example.test",
            "relay..example.test",
            "relay.example.test.",
            "mail@example.test",
            "",
            "*",
            "a.*.example.test",
            "bücher.test",
        ];
        let accepted = [
            "relay",
            "*.example.test",
            "2001:db8::1",
            "xn--bcher-kva.test",
        ];
        let cases = refused.map(|n| (n, false)).into_iter();
        for (name, ok) in cases.chain(accepted.map(|n| (n, true))) {
            let o = Options {
                hostnames: vec![name.into()],
                ..options()
            };
            match generate(&o) {
                Ok(_) => assert!(ok, "{name:?} should be refused"),
                Err(GenError::BadHostname { name: refused, .. }) => {
                    assert!(!ok && refused == name, "{name:?} should be accepted")
                }
                Err(e) => panic!("{name:?}: {e}"),
            }
        }
    }
}
