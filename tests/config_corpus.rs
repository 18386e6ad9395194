//! Every shipped configuration loads, and each of its keys, misspelt, is
//! refused with an error that names it where it stands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tlsrelay::config::Config;

fn shipped_configs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files = Vec::new();
    for dir in [root.clone(), root.join("examples")] {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the example and three examples, found {files:?}"
    );
    files
}

#[test]
fn every_shipped_config_loads() {
    for file in shipped_configs() {
        if let Err(e) = Config::load(&file) {
            panic!("{} does not load:\n{e}", file.display());
        }
    }
}

/// For every `key = value` line, the key path serde reports for it:
/// `server.listen`, `outbound[1].tls`, …
fn keys_with_paths(text: &str) -> Vec<(usize, String, String)> {
    let mut section = String::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            let index = counts.entry(name.to_string()).or_insert(0);
            section = format!("{name}[{index}]");
            *index += 1;
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, _)) = line.split_once(" = ") {
            if !line.starts_with('#') {
                keys.push((i + 1, key.to_string(), format!("{section}.{key}")));
            }
        }
    }
    keys
}

#[test]
fn a_misspelt_key_is_refused_by_name_and_place() {
    let mut checked = 0;
    for file in shipped_configs() {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let keys = keys_with_paths(&text);
        assert!(!keys.is_empty(), "{}: no keys found", file.display());
        for (line, key, path) in keys {
            let typo = format!("{key}{}", key.chars().last().unwrap_or('x'));
            let lines: Vec<String> = text
                .lines()
                .enumerate()
                .map(|(i, l)| {
                    if i + 1 == line {
                        l.replacen(&key, &typo, 1)
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            let result = Config::parse(&file, lines.join("\n"));
            let message = result.err().map(|e| e.to_string()).unwrap_or_default();
            let typo_path = format!("{}{}", path, &typo[key.len()..]);
            let expected = format!(
                "{}:{line}:1: {typo_path}: unknown key `{typo}`; known keys here: ",
                file.display()
            );
            assert!(
                message.starts_with(&expected),
                "misspelling {path}:\n  expected: {expected}…\n  got: {message}"
            );
            checked += 1;
        }
    }
    assert!(checked > 60, "only {checked} keys checked");
}

#[test]
fn check_config_reads_the_files_it_names() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/partner-gateway.toml");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // The example names /etc paths; give it files nobody has to own.
    let text = std::fs::read_to_string(&file)
        .unwrap_or_default()
        .replace("/etc/tlsrelay/certs/", "")
        .replace("/var/lib/tlsrelay/spool", "spool")
        .replace("[tls]\n", "[tls]\ngenerate_if_missing = true\n");
    let copy = dir.path().join("gateway.toml");
    std::fs::write(&copy, text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("fabrikam-ca.pem"), "").unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
        .args(["check-config", "-c"])
        .arg(&copy)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The empty CA file is the one thing wrong, reported at both keys naming it.
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "stderr: {stderr}");
    let ca = dir.path().join("fabrikam-ca.pem");
    let problem = format!(
        "{}: no certificate found (expected a block starting -----BEGIN CERTIFICATE-----)",
        ca.display()
    );
    assert_eq!(
        lines[0],
        format!("{}:18:14: tls.client_ca[0]: {problem}", copy.display())
    );
    assert_eq!(
        lines[1],
        format!("{}:50:11: outbound[1].ca_file: {problem}", copy.display())
    );
}

#[test]
fn check_config_exits_1_with_one_line_per_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[server]\nhostname = \"r.test\"\nlisten = [\"localhost:25\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
        .args(["check-config", "-c"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "{}:3:11: server.listen[0]: invalid listen address \"localhost:25\": write an IP address and port, for example \"0.0.0.0:25\" or \"[::]:25\"\n",
            file.display()
        )
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn check_config_prints_the_effective_settings() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(dir.path().join("config")).unwrap_or_else(|e| panic!("{e}"));
    let copy = dir.path().join("config/tlsrelay.toml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tlsrelay.toml"),
        &copy,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
        .args(["check-config", "-c"])
        .arg(&copy)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    let certs = dir.path().canonicalize().unwrap_or_default().join("certs");
    assert_eq!(
        stderr,
        format!(
            "{}:59:8: tls.cert: warning: {}/relay.crt does not exist yet; a self-signed certificate for relay.example.test will be generated at start\n",
            copy.display(),
            certs.display()
        )
    );
    for expected in [
        "Hostname    relay.example.test\n",
        "  127.0.0.1:2525  SMTP, STARTTLS offered\n",
        "  localhost    127.0.0.0/8, ::1/128  any domain             no           -\n",
        "  (anonymous)  any other client      accepted domains only  no           -\n",
        "  internal-mailbox-server  example.test  127.0.0.1:2526  opportunistic  minimum TLSv1.2\n",
        "  (default)                *             MX lookup       opportunistic\n",
        "Metrics     http://127.0.0.1:9325/metrics\n",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

/// The README's promise about `config/examples/`, run exactly as written
/// (from the project's root, as on a fresh clone where /etc/tlsrelay/certs/
/// does not exist): every example passes, and what it did not read is named.
#[test]
fn readme_check_config_command_accepts_every_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
    let command = "tlsrelay check-config --skip-files -c config/examples/";
    assert!(
        readme.contains(command),
        "README no longer says `{command}…`"
    );
    for file in shipped_configs() {
        let Ok(relative) = file.strip_prefix(root) else {
            continue;
        };
        if !relative.starts_with("config/examples") {
            continue;
        }
        let output = Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
            .current_dir(root)
            .args(["check-config", "--skip-files", "-c"])
            .arg(relative)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{}: {err}", relative.display());
        assert!(
            err.contains("not read (--skip-files): tls.cert = "),
            "{err}"
        );
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(out.contains("Outbound connectors"), "{out}");
    }
}

/// `--skip-files` skips files, not checks: a semantic error still fails.
#[test]
fn skip_files_still_refuses_an_open_relay() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("open.toml");
    std::fs::write(
        &file,
        "[server]\nhostname = \"relay.example.test\"\n[tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n\
         [[inbound]]\nname = \"all\"\nremote_ips = [\"0.0.0.0/1\", \"128.0.0.0/1\"]\nallow_relay = true\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
        .args(["check-config", "--skip-files", "-c"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("open.toml:") && err.contains("remote_ips"),
        "{err}"
    );
}
