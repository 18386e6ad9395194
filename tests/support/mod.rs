//! Helpers shared by the integration tests. Each test binary uses a different
//! subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod ca;
pub mod faulty;
pub mod flow;
pub mod postfix;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the built `tlsrelay` binary with `args`.
pub fn tlsrelay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tlsrelay")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Path as a `&str` argument (test temp dirs are UTF-8).
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write test file");
    path
}

/// Runs `/usr/bin/openssl` and returns its stdout; panics with stderr on failure.
pub fn openssl(args: &[&str]) -> String {
    let out = Command::new("/usr/bin/openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// `AB:CD:…` SHA-256 fingerprint of the first certificate in `pem`, per openssl.
pub fn openssl_fingerprint(pem: &Path) -> String {
    let line = openssl(&["x509", "-noout", "-fingerprint", "-sha256", "-in", arg(pem)]);
    line.trim()
        .split_once('=')
        .expect("openssl fingerprint line")
        .1
        .to_owned()
}

/// `sha256:<hex>` of the SubjectPublicKeyInfo of the first certificate in `pem`, per openssl.
pub fn openssl_spki_pin(pem: &Path) -> String {
    let script = format!(
        "/usr/bin/openssl x509 -pubkey -noout -in '{}' | /usr/bin/openssl pkey -pubin -outform DER | /usr/bin/openssl dgst -sha256 -r",
        arg(pem)
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    assert!(out.status.success(), "{}", stderr(&out));
    let hex = stdout(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    format!("sha256:{hex}")
}

pub mod dane_lab;
pub mod dns;
pub mod dsn;
pub mod hostile;
pub mod policy_server;
pub mod prediction;
pub mod receiver;
pub mod relay;
pub mod requiretls_receiver;
pub mod rustls_policy;
pub mod signed_dns;
pub mod smtp;
pub mod tls;
pub mod tls_receiver;
pub mod validated_dns;

/// Splits spooled content into our `Received:` header block (its first
/// line and the tab-indented ones after it) and the client's content.
pub fn split_received(content: &[u8]) -> (String, &[u8]) {
    let mut end = 0;
    while let Some(lf) = content[end..].iter().position(|&b| b == b'\n') {
        end += lf + 1;
        if content.get(end) != Some(&b'\t') {
            break;
        }
    }
    (
        String::from_utf8_lossy(&content[..end]).into_owned(),
        &content[end..],
    )
}
