//! The systemd unit as systemd itself reads it.

use std::process::Command;
use std::time::Duration;

use crate::support::postfix::run_bounded;

#[test]
#[ignore = "real peer: run by .ci/run"]
fn systemd_analyze_verifies_the_unit() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/tlsrelay.service"
    ))
    .expect("read config/tlsrelay.service");
    // verify checks that the programs exist: point them at the one just built.
    let unit = unit.replace("/usr/local/bin/tlsrelay", env!("CARGO_BIN_EXE_tlsrelay"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tlsrelay.service");
    std::fs::write(&path, unit).expect("write unit");
    let output = run_bounded(
        Command::new("systemd-analyze").arg("verify").arg(&path),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        output.status
    );
}
