//! Helpers shared by the integration tests. Each test binary uses a different
//! subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod ca;

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
