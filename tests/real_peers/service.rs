//! The service recipe: the systemd unit as systemd itself reads it, the
//! README's recipe run as an unprivileged user in a temporary root, the
//! start-up error for port 25 without the capability, and the real unit
//! under systemd where systemd runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::postfix::run_bounded;
use crate::support::relay::Relay;

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

/// One `Key=value` of the unit's `[Service]` section (the first).
fn unit_setting(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in config/tlsrelay.service"))
        .to_string()
}

fn read_shipped(name: &str) -> String {
    let path = format!("{}/config/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The README's service recipe in a temporary root: the binary in
/// `usr/local/bin`, `config/service.toml` as `etc/tlsrelay/tlsrelay.toml`
/// (0640, root, the service's group), the unit's StateDirectory
/// `var/lib/tlsrelay` (0750, the service's user). Only the root prefix,
/// the listener and the metrics address differ from the shipped file.
struct Installed {
    root: tempfile::TempDir,
    binary: PathBuf,
    config: PathBuf,
    state: PathBuf,
}

/// The unprivileged user standing in for `tlsrelay` (nobody/nogroup).
const USER: (u32, u32) = (65534, 65534);

fn install() -> Installed {
    use std::os::unix::fs::{chown, PermissionsExt};
    let root = tempfile::Builder::new()
        .prefix("tlsrelay-root")
        .tempdir()
        .expect("tempdir");
    let at = |p: &str| root.path().join(p.trim_start_matches('/'));
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    mode(root.path(), 0o755);
    for folder in ["usr/local/bin", "etc/tlsrelay", "var/lib"] {
        std::fs::create_dir_all(at(folder)).expect("mkdir");
    }
    let binary = at("/usr/local/bin/tlsrelay");
    std::fs::copy(env!("CARGO_BIN_EXE_tlsrelay"), &binary).expect("install binary");
    mode(&binary, 0o755);
    let state = at("/var/lib/tlsrelay");
    std::fs::create_dir(&state).expect("state dir");
    chown(&state, Some(USER.0), Some(USER.1)).expect("chown state");
    mode(&state, 0o750);
    let config = at("/etc/tlsrelay/tlsrelay.toml");
    install_service_config(&config, &state);
    Installed {
        root,
        binary,
        config,
        state,
    }
}

/// `config/service.toml` installed at `config` as the recipe does (0640,
/// root, the service's group), with its state folder at `state` and its
/// listeners on port 0: the only changes, each checked to apply.
fn install_service_config(config: &Path, state: &Path) {
    use std::os::unix::fs::{chown, PermissionsExt};
    let mut text = read_shipped("service.toml");
    for (from, to) in [
        ("\"/var/lib/tlsrelay/", format!("\"{}/", state.display())),
        (
            "listen = [\"0.0.0.0:25\"]",
            "listen = [\"127.0.0.1:0\"]".to_string(),
        ),
        ("\"127.0.0.1:9325\"", "\"127.0.0.1:0\"".to_string()),
    ] {
        assert!(text.contains(from), "config/service.toml has no {from}");
        text = text.replace(from, &to);
    }
    std::fs::write(config, text).expect("install config");
    chown(config, Some(0), Some(USER.1)).expect("chown config");
    std::fs::set_permissions(config, std::fs::Permissions::from_mode(0o640)).expect("chmod");
}

/// `setpriv` to the service's user with the unit's UMask, then `program`.
fn as_service_user(unit: &str, program: &Path) -> Vec<String> {
    let umask = unit_setting(unit, "UMask");
    vec![
        "setpriv".into(),
        format!("--reuid={}", USER.0),
        format!("--regid={}", USER.1),
        "--clear-groups".into(),
        "sh".into(),
        "-c".into(),
        format!("umask {umask} && exec \"$0\" \"$@\""),
        program.display().to_string(),
    ]
}

/// The service recipe works as written: the unit's own commands, as an
/// unprivileged user, on the shipped service configuration. check-config
/// (ExecStartPre) passes before the first start; serve generates its
/// certificate and keeps its spool in the StateDirectory, takes a message
/// over STARTTLS from swaks, writes nothing under /etc, and stops on
/// SIGTERM with exit 0.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn service_recipe_runs_as_an_unprivileged_user() {
    if !is_root() {
        eprintln!("skipped: switching to an unprivileged user needs root (CI runs as root)");
        return;
    }
    let unit = read_shipped("tlsrelay.service");
    assert_eq!(unit_setting(&unit, "User"), "tlsrelay");
    assert_eq!(unit_setting(&unit, "StateDirectory"), "tlsrelay");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    assert!(
        readme.contains("config/service.toml /etc/tlsrelay/tlsrelay.toml"),
        "the README's recipe installs config/service.toml"
    );
    let installed = install();
    let prefix = |command: String| {
        command
            .replace(
                "/usr/local/bin/tlsrelay",
                &installed.binary.display().to_string(),
            )
            .replace(
                "/etc/tlsrelay/tlsrelay.toml",
                &installed.config.display().to_string(),
            )
    };
    let check = prefix(unit_setting(&unit, "ExecStartPre"));
    let check: Vec<&str> = check.split_whitespace().collect();
    let mut wrapper = as_service_user(&unit, Path::new(check[0]));
    wrapper.extend(check[1..].iter().map(|a| a.to_string()));
    let output = run_bounded(
        Command::new(&wrapper[0]).args(&wrapper[1..]),
        Duration::from_secs(60),
    );
    assert!(
        output.status.success(),
        "ExecStartPre as the service user: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // ExecStart is `tlsrelay --log-format json serve -c CONFIG`, which
    // Relay runs (with the default --log-level spelt out).
    let start = prefix(unit_setting(&unit, "ExecStart"));
    assert_eq!(
        start,
        format!(
            "{} --log-format json serve -c {}",
            installed.binary.display(),
            installed.config.display()
        )
    );
    let program = as_service_user(&unit, &installed.binary);
    let program: Vec<&str> = program.iter().map(String::as_str).collect();
    let etc_before = list(&installed.root.path().join("etc"));
    let (state, config, root) = (
        installed.state.clone(),
        installed.config.clone(),
        installed.root,
    );
    let mut relay = Relay::start_installed(root, config, &program);
    let output = run_bounded(
        Command::new("swaks")
            .args(["--server", &relay.smtp.to_string(), "--timeout", "10"])
            .args([
                "--tls",
                "--from",
                "you@example.net",
                "--to",
                "bob@example.org",
            ]),
        Duration::from_secs(30),
    );
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{transcript}\n{}", relay.log());
    assert!(transcript.contains("<~  250 2.0.0"), "{transcript}");

    use std::os::unix::fs::MetadataExt;
    // The certificate is public (0644); the key and the spool are not.
    for (file, never) in [
        ("certs/relay.crt", 0o022),
        ("certs/relay.key", 0o077),
        ("spool", 0o027),
    ] {
        let meta = std::fs::metadata(state.join(file)).expect(file);
        assert_eq!(
            (meta.uid(), meta.gid()),
            USER,
            "{file} owned by the service user"
        );
        assert_eq!(meta.mode() & never, 0, "{file}: mode {:o}", meta.mode());
    }
    let accepted = relay.wait_for_log("message accepted", 1);
    assert!(
        accepted[0].contains("bob@example.org"),
        "{accepted:?}\n{:?}",
        list(&state)
    );
    assert!(
        list(&state.join("spool")).len() > 1,
        "the spool is in the StateDirectory: {:?}\n{}",
        list(&state),
        relay.log()
    );
    assert_eq!(
        list(&relay.dir().join("etc")),
        etc_before,
        "nothing written under /etc"
    );
    let status = relay.terminate();
    assert!(status.success(), "{status}\n{}", relay.log());
}

/// Every path under `dir`, sorted.
fn list(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            found.push(path);
        }
    }
    found.sort();
    found
}

/// Port 25 as a user without CAP_NET_BIND_SERVICE (in a network namespace
/// of the test's own, so no real port 25 is touched): exit 2 and an error
/// that says what to do.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn port_25_without_the_capability_says_what_to_do() {
    if !is_root() {
        eprintln!("skipped: a network namespace and a user switch need root (CI runs as root)");
        return;
    }
    let installed = install();
    let text = std::fs::read_to_string(&installed.config)
        .expect("config")
        .replace("127.0.0.1:0\"]", "127.0.0.1:25\"]");
    std::fs::write(&installed.config, text).expect("config");
    let unit = read_shipped("tlsrelay.service");
    let program = as_service_user(&unit, &installed.binary);
    let output = run_bounded(
        Command::new("unshare")
            .args([
                "--net",
                "sh",
                "-c",
                "ip link set lo up && exec \"$@\"",
                "sh",
            ])
            .args(&program)
            .args(["serve", "-c"])
            .arg(&installed.config),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot listen on 127.0.0.1:25 (smtp)")
            && stderr.contains("CAP_NET_BIND_SERVICE"),
        "{stderr}"
    );
}

/// Removes the test unit and its folders, whatever the test's outcome.
struct UnitGuard {
    name: String,
    files: Vec<PathBuf>,
}

impl Drop for UnitGuard {
    fn drop(&mut self) {
        let _ = Command::new("systemctl")
            .args(["stop", &self.name])
            .status();
        for file in &self.files {
            let _ = std::fs::remove_dir_all(file).or_else(|_| std::fs::remove_file(file));
        }
        let _ = Command::new("systemctl").arg("daemon-reload").status();
    }
}

/// The real unit under systemd, where systemd runs (not in most
/// containers): the shipped unit with only its paths, user and state
/// folder renamed for the test, started by `systemctl start` (Type=notify:
/// it returns after READY=1), a message over STARTTLS, then a clean stop.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn real_unit_starts_under_systemd() {
    if !Path::new("/run/systemd/system").is_dir() || !is_root() {
        eprintln!(
            "skipped: systemd is not the init system here (no /run/systemd/system) or we are \
             not root; the recipe itself is tested by service_recipe_runs_as_an_unprivileged_user"
        );
        return;
    }
    let name = format!("tlsrelay-test-{}", std::process::id());
    // Not under /tmp (PrivateTmp) or /home (ProtectHome): the unit must see it.
    let root = PathBuf::from(format!("/run/{name}"));
    let state = PathBuf::from(format!("/var/lib/{name}"));
    let unit_file = PathBuf::from(format!("/run/systemd/system/{name}.service"));
    let guard = UnitGuard {
        name: format!("{name}.service"),
        files: vec![unit_file.clone(), root.clone(), state.clone()],
    };
    std::fs::create_dir_all(&root).expect("mkdir");
    let binary = root.join("tlsrelay");
    std::fs::copy(env!("CARGO_BIN_EXE_tlsrelay"), &binary).expect("binary");
    let config = root.join("tlsrelay.toml");
    install_service_config(&config, &state);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let unit = read_shipped("tlsrelay.service")
        .replace("/usr/local/bin/tlsrelay", &binary.display().to_string())
        .replace("/etc/tlsrelay/tlsrelay.toml", &config.display().to_string())
        .replace("User=tlsrelay", "User=nobody")
        .replace("Group=tlsrelay", "Group=nogroup")
        .replace("StateDirectory=tlsrelay", &format!("StateDirectory={name}"));
    std::fs::write(&unit_file, unit).expect("unit");
    let systemctl = |args: &[&str]| {
        run_bounded(
            Command::new("systemctl").args(args),
            Duration::from_secs(90),
        )
    };
    assert!(systemctl(&["daemon-reload"]).status.success());
    let started = systemctl(&["start", &guard.name]);
    let journal = || {
        let out = run_bounded(
            Command::new("journalctl").args(["-u", &guard.name, "-o", "cat", "--no-pager"]),
            Duration::from_secs(30),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(started.status.success(), "systemctl start:\n{}", journal());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let smtp = loop {
        let found = journal().lines().find_map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).ok()?;
            let fields = &event["fields"];
            (fields["message"] == "listening" && fields["mode"] == "smtp")
                .then(|| fields["address"].as_str().map(str::to_string))
                .flatten()
        });
        if let Some(address) = found {
            break address;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no listening line:\n{}",
            journal()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = run_bounded(
        Command::new("swaks")
            .args(["--server", &smtp, "--timeout", "10", "--tls"])
            .args(["--from", "you@example.net", "--to", "bob@example.org"]),
        Duration::from_secs(30),
    );
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(
        transcript.contains("<~  250 2.0.0"),
        "{transcript}\n{}",
        journal()
    );
    assert!(systemctl(&["stop", &guard.name]).status.success());
    let result = systemctl(&["show", &guard.name, "-p", "Result", "--value"]);
    assert_eq!(
        String::from_utf8_lossy(&result.stdout).trim(),
        "success",
        "{}",
        journal()
    );
    drop(guard);
}
